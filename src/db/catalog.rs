//! What a table looks like: its real name, its columns and their types.
//!
//! Names in a mapping are matched to the catalog exactly first, then
//! case-insensitively when that is unambiguous, so a DBA can write `GDBH` for
//! a PostgreSQL column created unquoted as `gdbh`.

use super::sql::{fetch_pool, Arg};
use super::{Engine, Pool};
use crate::ident::{Ident, TableName};

/// How hlx reads and writes a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// An integer too wide for i64 (MySQL BIGINT UNSIGNED): read as decimal text.
    BigUnsigned,
    Float,
    Decimal,
    Bool,
    Text,
    Bytes,
    Date,
    /// Time of day (read as text: MySQL TIME can pass 24h).
    Time,
    Timestamp,
    TimestampTz,
    /// Anything else (uuid, json, interval, arrays…): read as the engine's text.
    Other,
    /// SQLite: decided per value by its storage class.
    Dynamic,
}

impl Kind {
    pub fn is_temporal(self) -> bool {
        matches!(self, Kind::Date | Kind::Timestamp | Kind::TimestampTz | Kind::Time)
    }
}

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as the engine spells it. On PostgreSQL this is the base type
    /// without its modifier (`character varying`, `numeric`), because it is
    /// used in casts, and a cast to `varchar(8)` truncates and a cast to
    /// `numeric(5,2)` rounds silently; the column's own limits must refuse.
    pub sql_type: String,
    /// PostgreSQL's internal type name (`int4`, `timestamptz`), for decoding.
    pub udt: String,
    pub kind: Kind,
    pub nullable: bool,
    /// Characters, for text columns that declare a length.
    pub max_chars: Option<i64>,
    /// Fraction-of-second digits of a timestamp column (6 = microseconds).
    pub fraction_digits: Option<i64>,
}

/// A table as found in the catalog.
#[derive(Debug, Clone)]
pub struct Table {
    /// The real schema (if qualified) and table name.
    pub name: TableName,
    pub columns: Vec<Column>,
}

impl Table {
    /// Finds a column: exact name, else the one case-insensitive match.
    pub fn column(&self, want: &str) -> Result<(usize, &Column), String> {
        if let Some(i) = self.columns.iter().position(|c| c.name == want) {
            return Ok((i, &self.columns[i]));
        }
        let hits: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].name.eq_ignore_ascii_case(want))
            .collect();
        match hits.as_slice() {
            [i] => Ok((*i, &self.columns[*i])),
            [] => Err(format!(
                "column `{want}` does not exist in table {} (it has: {})",
                self.name,
                self.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!(
                "column `{want}` matches several columns of {} that differ only in case; write it exactly",
                self.name
            )),
        }
    }
}

fn pg_kind(udt: &str) -> Kind {
    match udt {
        "int2" | "int4" | "int8" => Kind::Int,
        "float4" | "float8" => Kind::Float,
        "numeric" => Kind::Decimal,
        "bool" => Kind::Bool,
        "text" | "varchar" | "bpchar" | "name" | "char" | "citext" => Kind::Text,
        "bytea" => Kind::Bytes,
        "date" => Kind::Date,
        "time" | "timetz" => Kind::Time,
        "timestamp" => Kind::Timestamp,
        "timestamptz" => Kind::TimestampTz,
        _ => Kind::Other,
    }
}

fn mysql_kind(data_type: &str, column_type: &str) -> Kind {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "bigint" if unsigned => Kind::BigUnsigned,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" | "bit" => Kind::Int,
        "float" | "double" | "real" => Kind::Float,
        "decimal" | "numeric" => Kind::Decimal,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" | "json" => Kind::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
        "date" => Kind::Date,
        "time" => Kind::Time,
        "datetime" => Kind::Timestamp,
        "timestamp" => Kind::TimestampTz,
        _ => Kind::Other,
    }
}

/// SQLite's declared type, by its affinity rules, for writing; reading is
/// per value.
fn sqlite_kind(decl: &str) -> Kind {
    let d = decl.to_ascii_uppercase();
    if d.contains("TIMESTAMPTZ") || d.contains("WITH TIME ZONE") {
        Kind::TimestampTz
    } else if d.contains("DATETIME") || d.contains("TIMESTAMP") {
        Kind::Timestamp
    } else if d == "DATE" {
        Kind::Date
    } else if d.contains("BOOL") {
        Kind::Bool
    } else {
        Kind::Dynamic
    }
}

/// Reads a table's columns; `Ok(None)` when the table does not exist.
pub async fn table(pool: &Pool, name: &TableName) -> anyhow::Result<Option<Table>> {
    let schema = name.schema.as_ref().map(|s| s.as_str().to_string());
    let want = name.table.as_str();
    let rows = match pool.engine() {
        Engine::Postgres => {
            fetch_pool(
                pool,
                "SELECT c.relname::text, n.nspname::text, a.attname::text, format_type(a.atttypid, NULL), t.typname::text, \
                        (NOT a.attnotnull), CASE WHEN a.atttypmod > 4 AND t.typname IN ('varchar','bpchar') THEN (a.atttypmod - 4)::int8 END, \
                        CASE WHEN t.typname IN ('timestamp','timestamptz') THEN (CASE WHEN a.atttypmod < 0 THEN 6 ELSE a.atttypmod END)::int8 END \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 WHERE c.relkind IN ('r','v','m','p','f') AND lower(c.relname) = lower(?) \
                   AND n.nspname = COALESCE(?, current_schema()) \
                 ORDER BY (c.relname = ?) DESC, c.relname, a.attnum",
                &[want.into(), Arg::Text(schema.clone()), want.into()],
            )
            .await?
        }
        Engine::MySql => {
            fetch_pool(
                pool,
                "SELECT TABLE_NAME, TABLE_SCHEMA, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, CASE WHEN IS_NULLABLE = 'YES' THEN 1 ELSE 0 END, \
                        CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED), CAST(DATETIME_PRECISION AS SIGNED) \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND lower(TABLE_NAME) = lower(?) \
                 ORDER BY (TABLE_NAME = ?) DESC, TABLE_NAME, ORDINAL_POSITION",
                &[Arg::Text(schema.clone()), want.into(), want.into()],
            )
            .await?
        }
        Engine::Sqlite => {
            // pragma_table_info is case-insensitive on the table name already.
            let exists = fetch_pool(
                pool,
                "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND lower(name) = lower(?) ORDER BY (name = ?) DESC",
                &[want.into(), want.into()],
            )
            .await?;
            let Some(real) = exists.first().map(|r| r.text(0)).transpose()?.flatten() else {
                return Ok(None);
            };
            let rows = fetch_pool(pool, "SELECT name, type, \"notnull\" FROM pragma_table_info(?)", &[real.clone().into()]).await?;
            let mut columns = Vec::new();
            for r in rows {
                let n = r.text(0)?.unwrap_or_default();
                let t = r.text(1)?.unwrap_or_default();
                columns.push(Column {
                    name: n,
                    kind: sqlite_kind(&t),
                    udt: t.to_ascii_lowercase(),
                    sql_type: t,
                    nullable: r.i64(2)?.unwrap_or(0) == 0,
                    max_chars: None,
                    fraction_digits: None,
                });
            }
            return Ok(Some(Table {
                name: TableName {
                    schema: None,
                    table: Ident::parse(&real).map_err(anyhow::Error::msg)?,
                },
                columns,
            }));
        }
    };
    let mut table: Option<(String, String)> = None;
    let mut columns = Vec::new();
    for r in rows {
        let tname = r.text(0)?.unwrap_or_default();
        let sname = r.text(1)?.unwrap_or_default();
        match &table {
            None => table = Some((tname.clone(), sname)),
            Some((t, _)) if *t != tname => break,
            _ => {}
        }
        let col = r.text(2)?.unwrap_or_default();
        let sql_type = r.text(3)?.unwrap_or_default();
        let udt = r.text(4)?.unwrap_or_default();
        let (kind, nullable) = match pool.engine() {
            Engine::Postgres => (pg_kind(&udt), r.bool(5)?.unwrap_or(true)),
            _ => (
                mysql_kind(&udt.to_ascii_lowercase(), &sql_type.to_ascii_lowercase()),
                r.i64(5)?.unwrap_or(1) != 0,
            ),
        };
        columns.push(Column {
            name: col,
            sql_type,
            udt,
            kind,
            nullable,
            max_chars: r.i64(6)?,
            fraction_digits: r.i64(7)?,
        });
    }
    let Some((t, s)) = table else { return Ok(None) };
    Ok(Some(Table {
        name: TableName {
            schema: if name.schema.is_some() {
                Some(Ident::parse(&s).map_err(anyhow::Error::msg)?)
            } else {
                None
            },
            table: Ident::parse(&t).map_err(anyhow::Error::msg)?,
        },
        columns,
    }))
}

/// Reads a table that must exist; the error names the database.
pub async fn require(pool: &Pool, name: &TableName, side: &str) -> anyhow::Result<Table> {
    match table(pool, name).await? {
        Some(t) => Ok(t),
        None => anyhow::bail!("{side} table {name} does not exist"),
    }
}

/// An index: its name, whether it is unique, its columns in order (a part
/// that is an expression shows as `(expression)`).
#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub columns: Vec<String>,
}

/// The indexes of a table (as found by [`table`]).
/// Whether the relation is a view (its indexes are its base tables').
pub async fn is_view(pool: &Pool, t: &Table) -> anyhow::Result<bool> {
    let schema = t.name.schema.as_ref().map(|s| s.as_str().to_string());
    let name = t.name.table.as_str();
    let rows = match pool.engine() {
        Engine::Postgres => {
            fetch_pool(
                pool,
                "SELECT 1::int8 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = ? AND n.nspname = COALESCE(?, current_schema()) AND c.relkind IN ('v', 'm')",
                &[name.into(), Arg::Text(schema)],
            )
            .await?
        }
        Engine::MySql => {
            fetch_pool(
                pool,
                "SELECT CAST(1 AS SIGNED) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                &[Arg::Text(schema), name.into()],
            )
            .await?
        }
        Engine::Sqlite => {
            fetch_pool(
                pool,
                "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?",
                &[name.into()],
            )
            .await?
        }
    };
    Ok(!rows.is_empty())
}

pub async fn indexes(pool: &Pool, t: &Table) -> anyhow::Result<Vec<Index>> {
    let schema = t.name.schema.as_ref().map(|s| s.as_str().to_string());
    let name = t.name.table.as_str();
    let rows = match pool.engine() {
        Engine::Postgres => {
            fetch_pool(
                pool,
                "SELECT i.relname::text, CASE WHEN ix.indisunique THEN 1 ELSE 0 END::int8, \
                        array_to_string(ARRAY(SELECT COALESCE(a.attname::text, '(expression)') \
                        FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord) \
                        LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                        ORDER BY k.ord), ',') \
                 FROM pg_catalog.pg_index ix JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid \
                 JOIN pg_catalog.pg_class t ON t.oid = ix.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
                 WHERE t.relname = ? AND n.nspname = COALESCE(?, current_schema())",
                &[name.into(), Arg::Text(schema)],
            )
            .await?
        }
        Engine::MySql => {
            fetch_pool(
                pool,
                "SELECT INDEX_NAME, CAST(MIN(1 - NON_UNIQUE) AS SIGNED), GROUP_CONCAT(COALESCE(COLUMN_NAME, '(expression)') ORDER BY SEQ_IN_INDEX) \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                 GROUP BY INDEX_NAME",
                &[Arg::Text(schema), name.into()],
            )
            .await?
        }
        Engine::Sqlite => {
            fetch_pool(
                pool,
                "SELECT il.name, il.\"unique\", group_concat(coalesce(ii.name, '(expression)')) FROM pragma_index_list(?) il, pragma_index_info(il.name) ii \
                 GROUP BY il.name",
                &[name.into()],
            )
            .await?
        }
    };
    let mut out = Vec::new();
    for r in rows {
        out.push(Index {
            name: r.text(0)?.unwrap_or_default(),
            unique: r.i64(1)?.unwrap_or(0) != 0,
            columns: r
                .text(2)?
                .unwrap_or_default()
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    if pool.engine() == Engine::Sqlite {
        // An INTEGER PRIMARY KEY is the rowid and has no index entry.
        if let Some(pk) = fetch_pool(
            pool,
            "SELECT name FROM pragma_table_info(?) WHERE pk = 1 AND upper(type) = 'INTEGER'",
            &[name.into()],
        )
        .await?
        .first()
        {
            out.push(Index {
                name: "rowid".into(),
                unique: true,
                columns: vec![pk.text(0)?.unwrap_or_default()],
            });
        }
    }
    Ok(out)
}
