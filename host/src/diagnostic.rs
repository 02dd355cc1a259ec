//! User-facing errors about input files: where (file, line, column), what, and what to do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A mistake in a file the user wrote, rendered like a compiler error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line, when the mistake has a place.
    pub line: Option<usize>,
    /// 1-based column (in characters).
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
    /// The offending source line and a caret marker under the span.
    snippet: Option<Box<(String, usize, usize)>>,
}

impl Diagnostic {
    pub fn new(file: &Path, message: String) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message,
            hint: None,
            snippet: None,
        }
    }

    /// A diagnostic pointing at a byte span of `source`.
    pub fn at(file: &Path, source: &str, span: Range<usize>, message: String) -> Self {
        let start = span.start.min(source.len());
        let (line, column) = line_col(source, start);
        let line_text = source.lines().nth(line - 1).unwrap_or("").to_string();
        let line_chars = line_text.chars().count();
        let span_chars = source
            .get(start..span.end.min(source.len()))
            .map(|s| s.lines().next().unwrap_or("").chars().count())
            .unwrap_or(1)
            .clamp(1, line_chars.saturating_sub(column - 1).max(1));
        Self {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message,
            hint: None,
            snippet: Some(Box::new((line_text, column, span_chars))),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)?;
        if let (Some(snippet), Some(line)) = (&self.snippet, self.line) {
            let (text, column, width) = snippet.as_ref();
            let gutter = line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
                "",
                "",
                " ".repeat(column.saturating_sub(1)),
                "^".repeat(*width)
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_caret_and_hint() {
        let src = "a = 1\nname = \"x\"\n";
        let d = Diagnostic::at(Path::new("p.toml"), src, 13..16, "bad".into()).with_hint("fix it");
        assert_eq!((d.line, d.column), (Some(2), Some(8)));
        let text = d.to_string();
        assert!(text.starts_with("p.toml:2:8: bad"), "{text}");
        assert!(text.contains("2 | name = \"x\"\n  |        ^^^"), "{text}");
        assert!(text.ends_with("= help: fix it"), "{text}");
    }

    #[test]
    fn line_col_handles_multibyte_and_out_of_range() {
        assert_eq!(line_col("é\nab", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
