//! Running hlx's own statements (state tables, introspection) on any engine.
//!
//! Statements are written once with `?` placeholders; [`placeholders`]
//! rewrites them to `$1…` for PostgreSQL. Arguments are the small [`Arg`]
//! enum, whose NULLs are typed (PostgreSQL wants to know a NULL's type).

use super::{Pool, Tx};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// A bind argument of hlx's own statements.
#[derive(Debug, Clone)]
pub enum Arg {
    I64(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
    Utc(Option<DateTime<Utc>>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I64(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Arg {
        Arg::Utc(Some(v))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(Some(v))
    }
}

/// `?` → `$1, $2, …` (hlx's statements never hold a literal `?`).
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Bytes(v) => q.bind(v.clone()),
                Arg::Bool(v) => q.bind(*v),
                Arg::Utc(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// A row of one of hlx's own queries, read by position.
pub enum DbRow {
    Pg(sqlx::postgres::PgRow),
    My(sqlx::mysql::MySqlRow),
    Lite(sqlx::sqlite::SqliteRow),
}

macro_rules! getter {
    ($name:ident, $t:ty) => {
        pub fn $name(&self, i: usize) -> anyhow::Result<Option<$t>> {
            Ok(match self {
                DbRow::Pg(r) => r.try_get::<Option<$t>, _>(i)?,
                DbRow::My(r) => r.try_get::<Option<$t>, _>(i)?,
                DbRow::Lite(r) => r.try_get::<Option<$t>, _>(i)?,
            })
        }
    };
}

impl DbRow {
    pub fn i64(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(match self {
            DbRow::Pg(r) => r.try_get::<Option<i64>, _>(i)?,
            // MySQL reports some integer results as UNSIGNED; read the bytes as i64.
            DbRow::My(r) => r.try_get_unchecked::<Option<i64>, _>(i)?,
            DbRow::Lite(r) => r.try_get::<Option<i64>, _>(i)?,
        })
    }
    getter!(bytes, Vec<u8>);
    getter!(utc, DateTime<Utc>);

    pub fn text(&self, i: usize) -> anyhow::Result<Option<String>> {
        Ok(match self {
            DbRow::Pg(r) => r.try_get::<Option<String>, _>(i)?,
            // information_schema columns may come back as binary strings on MySQL 8.
            DbRow::My(r) => r
                .try_get_unchecked::<Option<Vec<u8>>, _>(i)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            DbRow::Lite(r) => r.try_get::<Option<String>, _>(i)?,
        })
    }

    pub fn bool(&self, i: usize) -> anyhow::Result<Option<bool>> {
        Ok(match self {
            DbRow::Pg(r) => r.try_get::<Option<bool>, _>(i)?,
            DbRow::My(r) => r
                .try_get::<Option<i64>, _>(i)
                .map(|v| v.map(|x| x != 0))
                .or_else(|_| r.try_get::<Option<bool>, _>(i))?,
            DbRow::Lite(r) => r.try_get::<Option<bool>, _>(i)?,
        })
    }
}

macro_rules! run_on {
    ($exec:expr, $engine_sql:expr, $args:expr, $method:ident, $wrap:expr) => {{
        let sql_text: String = $engine_sql;
        // Built from validated, quoted identifiers and placeholders (crate::ident).
        let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql_text)), $args);
        $wrap(q.$method($exec).await?)
    }};
}

/// Executes a statement in a transaction; returns rows affected.
pub async fn exec(tx: &mut Tx, sql: &str, args: &[Arg]) -> anyhow::Result<u64> {
    Ok(match tx {
        Tx::Pg(t) => run_on!(
            &mut **t,
            placeholders(sql),
            args,
            execute,
            |r: sqlx::postgres::PgQueryResult| r.rows_affected()
        ),
        Tx::My(t) => run_on!(
            &mut **t,
            sql.to_string(),
            args,
            execute,
            |r: sqlx::mysql::MySqlQueryResult| r.rows_affected()
        ),
        Tx::Lite(t) => run_on!(
            &mut **t,
            sql.to_string(),
            args,
            execute,
            |r: sqlx::sqlite::SqliteQueryResult| r.rows_affected()
        ),
    })
}

/// Fetches rows in a transaction.
pub async fn fetch(tx: &mut Tx, sql: &str, args: &[Arg]) -> anyhow::Result<Vec<DbRow>> {
    Ok(match tx {
        Tx::Pg(t) => run_on!(&mut **t, placeholders(sql), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::Pg)
            .collect()),
        Tx::My(t) => run_on!(&mut **t, sql.to_string(), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::My)
            .collect()),
        Tx::Lite(t) => run_on!(&mut **t, sql.to_string(), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::Lite)
            .collect()),
    })
}

/// [`run_on!`] on one connection of a pool, given back to the pool before
/// the result returns ([`super::with_conn`]).
macro_rules! run_pooled {
    ($pool:expr, $($rest:tt)*) => {
        super::with_conn($pool, async |c| Ok(run_on!(c, $($rest)*))).await
    };
}

/// Executes a statement on the pool (autocommit).
pub async fn exec_pool(pool: &Pool, sql: &str, args: &[Arg]) -> anyhow::Result<u64> {
    match pool {
        Pool::Pg(p) => run_pooled!(
            p,
            placeholders(sql),
            args,
            execute,
            |r: sqlx::postgres::PgQueryResult| r.rows_affected()
        ),
        Pool::My(p) => run_pooled!(p, sql.to_string(), args, execute, |r: sqlx::mysql::MySqlQueryResult| r
            .rows_affected()),
        Pool::Lite(p) => run_pooled!(
            p,
            sql.to_string(),
            args,
            execute,
            |r: sqlx::sqlite::SqliteQueryResult| r.rows_affected()
        ),
    }
}

/// Fetches rows on the pool.
pub async fn fetch_pool(pool: &Pool, sql: &str, args: &[Arg]) -> anyhow::Result<Vec<DbRow>> {
    match pool {
        Pool::Pg(p) => run_pooled!(p, placeholders(sql), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::Pg)
            .collect()),
        Pool::My(p) => run_pooled!(p, sql.to_string(), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::My)
            .collect()),
        Pool::Lite(p) => run_pooled!(p, sql.to_string(), args, fetch_all, |v: Vec<_>| v
            .into_iter()
            .map(DbRow::Lite)
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(super::placeholders("a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)");
    }
}
