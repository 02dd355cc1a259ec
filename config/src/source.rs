//! The text being parsed and the helpers every parser here shares: decoding bytes as UTF-8 with a
//! placed error, turning TOML/serde errors into plain-language diagnostics, refusing repeats.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use crate::diagnostic::{Diagnostic, Site, line_col};

/// A file's text and name, so errors can point into it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    pub fn site(&self, span: Range<usize>) -> Site {
        Site::at(self.path, self.text, span)
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.path, self.text, span, message)
    }

    /// `line 7, column 3`: where a span starts, for hints that name another place.
    pub fn place(&self, span: &Range<usize>) -> String {
        let (line, column) = line_col(self.text, span.start);
        format!("line {line}, column {column}")
    }

    /// A TOML syntax or shape error, in words a user knows (no Rust type names).
    pub fn toml_error(&self, err: &toml::de::Error) -> Diagnostic {
        let mut message = humanize(err.message());
        // A key missing at the top level comes with an empty span at the start of the file,
        // which is no place at all (line 1 may well be a comment).
        let span = err
            .span()
            .filter(|span| !(message.starts_with("missing field") && *span == (0..0)));
        let Some(span) = span else {
            return Diagnostic::new(self.path, message);
        };
        if message == "duplicate key"
            && let Some(key) = self.text.get(span.clone())
        {
            message = format!("duplicate key `{}`", ellipsize(key.trim(), 60));
        }
        self.error(span, message)
    }
}

/// Decodes a file's bytes (what [`crate::load`] does between reading and parsing); invalid
/// UTF-8 is an error at the first bad byte.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(err) => err,
    };
    let bad = err.utf8_error().valid_up_to();
    let bytes = err.as_bytes();
    let line_start = bytes[..bad]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = bytes[bad..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| bad + i);
    let before = String::from_utf8_lossy(&bytes[..bad]);
    let (line, column) = line_col(&before, before.len());
    let snippet = String::from_utf8_lossy(&bytes[line_start..line_end])
        .trim_end_matches('\r')
        .to_string();
    let site = Site {
        file: path.to_path_buf(),
        line,
        column,
        snippet,
        width: 1,
    };
    Err(site
        .error(format!(
            "the file is not valid UTF-8: byte 0x{:02X} cannot start or continue a character",
            bytes[bad]
        ))
        .with_hint(
            "save the file as UTF-8 (most editors offer it under \"Save with encoding\"), \
             or remove the character",
        ))
}

/// serde's wording names Rust types (`i64`, `struct RawStage`); say what to write instead.
fn humanize(message: &str) -> String {
    let mut text = message.trim_end().to_string();
    for (from, to) in [
        ("expected i64", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a table"),
        ("expected a boolean", "expected true or false"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// `text`, or its start and end around `…` when it is longer than `max` characters, for
/// quoting user values in messages.
pub(crate) fn ellipsize(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1) / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(count - keep).collect();
    format!("{head}…{tail}")
}

/// Remembers where each value of one list first appeared, to refuse repeats.
#[derive(Debug, Default)]
pub(crate) struct Unique {
    first: BTreeMap<String, Range<usize>>,
}

impl Unique {
    /// Ok the first time `key` is seen; a repeat is an error at `span` naming the first place.
    pub fn check(
        &mut self,
        src: &Source<'_>,
        key: &str,
        span: Range<usize>,
        message: impl FnOnce() -> String,
    ) -> Result<(), Diagnostic> {
        match self.first.get(key) {
            Some(first) => Err(src.error(span, message()).with_hint(format!(
                "it is first listed at {}; remove the repeat",
                src.place(first)
            ))),
            None => {
                self.first.insert(key.to_string(), span);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_points_at_the_first_bad_byte() {
        let bytes = b"a = 1\nname = \"caf\xe9\"\n".to_vec();
        let diag = decode(Path::new("p.toml"), bytes).err();
        let text = diag.map(|d| d.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("p.toml:2:12: the file is not valid UTF-8: byte 0xE9"),
            "{text}"
        );
        assert!(
            text.contains("2 | name = \"caf\u{fffd}\"\n  |            ^\n"),
            "{text}"
        );
        assert!(text.contains("= help: save the file as UTF-8"), "{text}");
    }

    #[test]
    fn valid_utf8_decodes() {
        assert_eq!(
            decode(Path::new("p"), "é".as_bytes().to_vec()).ok(),
            Some("é".to_string())
        );
    }

    #[test]
    fn long_values_are_shortened_in_the_middle() {
        assert_eq!(ellipsize("short", 10), "short");
        assert_eq!(ellipsize("abcdefghijklmnop", 9), "abcd…mnop");
    }

    #[test]
    fn serde_type_names_become_words() {
        assert_eq!(
            humanize("invalid type: string \"3\", expected i64\n"),
            "invalid type: string \"3\", expected a whole number"
        );
    }
}
