//! Identifiers from mapping files: validated when the mapping is loaded and
//! quoted for each engine when SQL is built. A mapping can never inject SQL:
//! an identifier is letters (any script, so Chinese column names work),
//! digits, `_` and `$`, at most 64 characters, and a table may be qualified by
//! one schema (`schema.table`).

use crate::db::Engine;
use std::fmt;

/// A validated column or table-part name, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Checks a name; the error says what is allowed.
    ///
    /// ```
    /// use hotline_exchange::ident::Ident;
    /// assert!(Ident::parse("工单编号").is_ok());
    /// let e = Ident::parse("x; drop table y").unwrap_err();
    /// assert!(e.contains("contains `;`"));
    /// ```
    pub fn parse(s: &str) -> Result<Ident, String> {
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return Err("an identifier cannot be empty".into());
        };
        if s.chars().count() > 64 {
            return Err(format!(
                "identifier `{}…` is longer than 64 characters",
                s.chars().take(20).collect::<String>()
            ));
        }
        if !(first.is_alphabetic() || first == '_') {
            return Err(format!("identifier `{}` must start with a letter or `_`", escape(s)));
        }
        if let Some(bad) = s.chars().find(|c| !(c.is_alphanumeric() || *c == '_' || *c == '$')) {
            return Err(format!(
                "identifier `{}` contains `{}`: only letters, digits, `_` and `$` are allowed",
                escape(s),
                bad.escape_default()
            ));
        }
        Ok(Ident(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Quoted for the engine. Validation already excludes every quote
    /// character, so quoting cannot be broken out of.
    pub fn quoted(&self, engine: Engine) -> String {
        match engine {
            Engine::MySql => format!("`{}`", self.0),
            Engine::Postgres | Engine::Sqlite => format!("\"{}\"", self.0),
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn escape(s: &str) -> String {
    s.chars().flat_map(|c| c.escape_default()).take(80).collect()
}

/// A table name, optionally qualified by a schema (PostgreSQL schema, MySQL
/// database).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: Option<Ident>,
    pub table: Ident,
}

impl TableName {
    pub fn parse(s: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [t] => Ok(TableName {
                schema: None,
                table: Ident::parse(t)?,
            }),
            [sch, t] => Ok(TableName {
                schema: Some(Ident::parse(sch)?),
                table: Ident::parse(t)?,
            }),
            _ => Err(format!(
                "table `{}` has more than one `.`: write `table` or `schema.table`",
                escape(s)
            )),
        }
    }

    pub fn quoted(&self, engine: Engine) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", s.quoted(engine), self.table.quoted(engine)),
            None => self.table.quoted(engine),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => write!(f, "{}", self.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_attempts_are_refused() {
        for bad in ["x; drop table y", "a\"b", "a`b", "a b", "", "1abc", "a--", "t'"] {
            assert!(Ident::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(TableName::parse("a.b.c").is_err());
        let e = Ident::parse("x; drop table y").unwrap_err();
        assert!(e.contains("`;`"), "{e}");
    }

    #[test]
    fn real_names_are_accepted_and_quoted() {
        for ok in ["GDBH", "gmtModified", "update_time", "工单编号", "_x$1"] {
            assert!(Ident::parse(ok).is_ok(), "{ok} refused");
        }
        let t = TableName::parse("hlx_bench.stg_gd_info").unwrap();
        assert_eq!(t.quoted(Engine::Postgres), "\"hlx_bench\".\"stg_gd_info\"");
        assert_eq!(t.quoted(Engine::MySql), "`hlx_bench`.`stg_gd_info`");
    }
}
