//! `.gitignore`-style patterns: `#` comments, `!` negation, trailing `/` for folders only, a `/`
//! inside anchoring to the root, `*`, `?` and `**` globs. The last matching pattern wins.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

#[derive(Default)]
pub struct Patterns {
    rules: Vec<Rule>,
}

struct Rule {
    matcher: GlobMatcher,
    negated: bool,
    dirs_only: bool,
}

impl Patterns {
    /// Adds the patterns in `text`, one per line; lines that are not valid globs are skipped.
    pub fn add_lines(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (dirs_only, line) = match line.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let glob = if line.contains('/') {
                line.trim_start_matches('/').to_string()
            } else {
                format!("**/{line}")
            };
            if let Ok(glob) = GlobBuilder::new(&glob).literal_separator(true).build() {
                self.rules.push(Rule {
                    matcher: glob.compile_matcher(),
                    negated,
                    dirs_only,
                });
            }
        }
    }

    /// Whether `path` (relative to the root) is ignored.
    pub fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            if rule.dirs_only && !is_dir {
                continue;
            }
            if rule.matcher.is_match(path) {
                ignored = !rule.negated;
            }
        }
        ignored
    }
}
