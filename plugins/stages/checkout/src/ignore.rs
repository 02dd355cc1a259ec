//! `.gitignore`-style patterns: `#` comments, `!` negation, trailing `/` for folders only, a `/`
//! inside anchoring to the file's folder, `*`, `?` and `**` globs. The last matching pattern
//! wins, and a deeper folder's `.gitignore` wins over its parents' (`Layers`).

use std::path::{Path, PathBuf};

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

    /// Whether `path` (relative to the patterns' folder) is ignored (`Some(true)`), re-included
    /// (`Some(false)`) or not named at all.
    pub fn verdict(&self, path: &Path, is_dir: bool) -> Option<bool> {
        let mut verdict = None;
        for rule in &self.rules {
            if rule.dirs_only && !is_dir {
                continue;
            }
            if rule.matcher.is_match(path) {
                verdict = Some(!rule.negated);
            }
        }
        verdict
    }
}

/// The patterns in force across a tree: the root's, then each folder's own `.gitignore`.
#[derive(Default)]
pub struct Layers {
    layers: Vec<(PathBuf, Patterns)>,
}

impl Layers {
    /// Patterns from `text` that apply under `folder` (relative to the root; empty for the root).
    pub fn add(&mut self, folder: &Path, text: &str) {
        let mut patterns = Patterns::default();
        patterns.add_lines(text);
        self.layers.push((folder.to_path_buf(), patterns));
    }

    /// Whether `path` (relative to the root) is ignored: the deepest folder that names it decides.
    pub fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut ignored = false;
        let mut depth = 0;
        for (folder, patterns) in &self.layers {
            let Ok(inside) = path.strip_prefix(folder) else {
                continue;
            };
            let level = folder.components().count();
            if let Some(verdict) = patterns.verdict(inside, is_dir)
                && level >= depth
            {
                ignored = verdict;
                depth = level;
            }
        }
        ignored
    }
}
