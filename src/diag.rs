//! Diagnostics that point at a file, line and column.
//!
//! Config, mapping and code-set problems are collected, not thrown one at a
//! time, so `hlx check` shows every problem at once, each rendered like a
//! compiler message: `mappings/haikou.toml:12:18: error: …`. A diagnostic never
//! quotes the offending line, which could hold a password.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file's text, kept to turn byte offsets into line and column.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, Diagnostic> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SourceFile {
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => Err(Diagnostic::file(path, format!("cannot read the file: {e}"))),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// A diagnostic at the start of a span.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.locate(span.start);
        Diagnostic {
            file: self.path.clone(),
            line: Some((line, col)),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// Turns a TOML parse or shape error into a diagnostic with its location.
    /// The parser's message is kept whole (all its lines but the excerpt of the
    /// source, which could hold a password).
    pub fn toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => self.at(span, message),
            None => Diagnostic::file(&self.path, message),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with where it is.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// Line and column, 1-based; `None` when the problem is the whole file.
    pub line: Option<(usize, usize)>,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: path.to_path_buf(),
            line: None,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(mut self) -> Diagnostic {
        self.severity = Severity::Warning;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {sev}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {sev}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found while loading; an error when any is an error.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let f = SourceFile {
            path: "m.toml".into(),
            text: "a = 1\ntitle = \"海口\" x\n".into(),
        };
        let off = f.text.find('x').unwrap();
        assert_eq!(f.locate(off), (2, 14));
        assert_eq!(f.locate(0), (1, 1));
    }
}
