//! User-facing errors about input files: where (file, line, column), what, and what to do.
//! A [`Site`] remembers a place so a later layer can report at it without the source text.

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
    /// The offending source line and how many characters to underline from `column`.
    snippet: Option<Box<(String, usize)>>,
}

/// A remembered place in a file: enough to report a problem there later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Site {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The source line, shown under the message with a caret marker.
    pub snippet: String,
    /// How many characters the marker underlines (at least 1).
    pub width: usize,
}

impl Site {
    /// The place of a byte span of `source`.
    pub fn at(file: &Path, source: &str, span: Range<usize>) -> Self {
        let start = span.start.min(source.len());
        let (line, column) = line_col(source, start);
        let snippet = source.lines().nth(line - 1).unwrap_or("").to_string();
        let rest = snippet.chars().count().saturating_sub(column - 1).max(1);
        let width = source
            .get(start..span.end.min(source.len()))
            .map_or(1, |s| s.lines().next().unwrap_or("").chars().count())
            .clamp(1, rest);
        Self {
            file: file.to_path_buf(),
            line,
            column,
            snippet,
            width,
        }
    }

    /// A diagnostic at this place.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: Some(self.line),
            column: Some(self.column),
            message: message.into(),
            hint: None,
            snippet: Some(Box::new((self.snippet.clone(), self.width))),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl Diagnostic {
    /// A diagnostic about a whole file (no line, no column).
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }

    /// A diagnostic pointing at a byte span of `source`.
    pub fn at(file: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Site::at(file, source, span).error(message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// 1-based line and column (in characters) of a byte offset. An offset between the `\r` and the
/// `\n` of a CRLF line ending is placed at the `\r`: the ending starts there, and the excerpt
/// (cut by [`str::lines`]) shows neither, so the marker sits just past the line's last character.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    if source[offset..].starts_with('\n') && source[..offset].ends_with('\r') {
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
        if let (Some(snippet), Some(line), Some(column)) = (&self.snippet, self.line, self.column) {
            let (text, indent, width) = window(&snippet.0, column.saturating_sub(1), snippet.1);
            let gutter = line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
                "",
                "",
                " ".repeat(indent),
                "^".repeat(width)
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Longest source line shown whole under a message; longer lines show a window around the mark.
const MAX_SHOWN_CHARS: usize = 100;
/// Characters of context kept before the mark when a long line is cut.
const CONTEXT_CHARS: usize = 20;

/// The part of `line` to show, the marker's indent in it and the marker's width (all in chars);
/// `start` is the 0-based character the marker starts at.
fn window(line: &str, start: usize, width: usize) -> (String, usize, usize) {
    let len = line.chars().count();
    if len <= MAX_SHOWN_CHARS {
        return (line.to_string(), start, width);
    }
    let from = start.saturating_sub(CONTEXT_CHARS);
    let to = (from + MAX_SHOWN_CHARS).min(len);
    let mut text: String = line.chars().skip(from).take(to - from).collect();
    let mut indent = start - from;
    if from > 0 {
        text.insert(0, '…');
        indent += 1;
    }
    if to < len {
        text.push('…');
    }
    let width = width.min(to.saturating_sub(start)).max(1);
    (text, indent, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_caret_and_hint() {
        let src = "a = 1\nname = \"x\"\n";
        let d = Diagnostic::at(Path::new("p.toml"), src, 13..16, "bad").with_hint("fix it");
        assert_eq!((d.line, d.column), (Some(2), Some(8)));
        let text = d.to_string();
        assert!(text.starts_with("p.toml:2:8: bad"), "{text}");
        assert!(text.contains("2 | name = \"x\"\n  |        ^^^"), "{text}");
        assert!(text.ends_with("= help: fix it"), "{text}");
    }

    #[test]
    fn a_site_reports_later_exactly_like_a_span() {
        let src = "a = 1\nname = \"x\"\n";
        let site = Site::at(Path::new("p.toml"), src, 13..16);
        assert_eq!(site.to_string(), "p.toml:2:8");
        assert_eq!(
            site.error("bad"),
            Diagnostic::at(Path::new("p.toml"), src, 13..16, "bad")
        );
    }

    #[test]
    fn a_whole_file_diagnostic_has_no_place() {
        let d = Diagnostic::new(Path::new("p.toml"), "empty").with_hint("h");
        assert_eq!(d.to_string(), "p.toml: empty\n  = help: h");
    }

    #[test]
    fn long_lines_are_cut_around_the_mark() {
        let src = format!("key = \"{}\" # {}", "x".repeat(150), "y".repeat(150));
        let start = 160;
        let text = Diagnostic::at(Path::new("p"), &src, start..start + 3, "bad").to_string();
        let shown = format!("1 | …{}…", &src[start - 20..start + 80]);
        assert!(text.contains(&shown), "{text}");
        assert!(
            text.ends_with(&format!("  | {}^^^", " ".repeat(21))),
            "{text}"
        );
        let whole = Diagnostic::at(Path::new("p"), &src, 6..src.len(), "bad").to_string();
        let marker = format!("  | {}{}", " ".repeat(6), "^".repeat(94));
        assert!(whole.ends_with(&marker), "{whole}");
    }

    #[test]
    fn line_col_handles_multibyte_and_out_of_range() {
        assert_eq!(line_col("é\nab", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
        assert_eq!(line_col("é", 1), (1, 1));
    }

    /// Found by the `pipeline` fuzz target: in a CRLF file, an error at the `\n` (here the
    /// unclosed string `"` at 1:3) was placed one character past the `\r`, which the excerpt
    /// does not show, so the marker stood two characters past the end of the line.
    #[test]
    fn a_place_inside_a_crlf_ending_is_at_its_start() {
        assert_eq!(line_col("ab\r\ncd", 3), (1, 3));
        assert_eq!(line_col("ab\r\ncd", 2), (1, 3));
        assert_eq!(line_col("ab\r\ncd", 4), (2, 1));
        assert_eq!(line_col("ab\rcd", 3), (1, 4), "a lone \\r is a character");
        let text = Diagnostic::at(Path::new("p"), "\"\r\n", 2..2, "bad").to_string();
        assert_eq!(text, "p:1:2: bad\n  |\n1 | \"\n  |  ^");
    }
}
