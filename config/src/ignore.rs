//! `cache_ignore`: the paths a stage-cache key leaves out of a folder, written as `.gitignore`
//! patterns — a trailing `/` for folders only, a `/` at the start or inside anchoring to the
//! folder's top, `*`, `?` and `**` globs. No `!` re-inclusion: a key either sees a path or not.

use globset::{GlobBuilder, GlobMatcher};

/// Compiled `cache_ignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: GlobMatcher,
    dirs_only: bool,
}

impl IgnoreList {
    /// The patterns compiled; `Err` names what is wrong with the first bad one.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut rules = Vec::new();
        for pattern in patterns {
            let text = pattern.trim();
            if text.is_empty() || text == "/" {
                return Err("an empty pattern".into());
            }
            if text.starts_with('!') {
                return Err("`!` (re-include) is not supported here".into());
            }
            let (dirs_only, body) = match text.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            if body.split('/').any(|part| part == "..") {
                return Err("`..` would name a path outside the folder".into());
            }
            let glob = if body.contains('/') {
                body.trim_start_matches('/').to_string()
            } else {
                format!("**/{body}")
            };
            let matcher = GlobBuilder::new(&glob)
                .literal_separator(true)
                .build()
                .map_err(|err| err.kind().to_string())?
                .compile_matcher();
            rules.push(Rule { matcher, dirs_only });
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the key leaves out `path` (relative to the folder, `/` between names).
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        self.rules
            .iter()
            .any(|rule| (is_dir || !rule.dirs_only) && rule.matcher.is_match(path))
    }
}

impl IgnoreList {
    /// Whether the key leaves out the file at `path`: it or a folder it is in is ignored.
    pub fn covers(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        (1..=parts.len()).any(|n| {
            let prefix = parts[..n].join("/");
            self.ignores(&prefix, n < parts.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> IgnoreList {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        IgnoreList::new(&owned).expect("valid patterns")
    }

    #[test]
    fn a_bare_name_matches_at_any_depth_and_a_slash_anchors() {
        let ignore = list(&[".venv/", "*.egg-info/", "/build/", "docs/out.log"]);
        assert!(ignore.ignores(".venv", true));
        assert!(
            !ignore.ignores(".venv", false),
            "a file named .venv is kept"
        );
        assert!(ignore.ignores("src/pkg.egg-info", true));
        assert!(ignore.ignores("build", true));
        assert!(!ignore.ignores("src/build", true), "anchored to the top");
        assert!(ignore.ignores("docs/out.log", false));
        assert!(!ignore.ignores("src/venv.py", false));
        assert!(!ignore.ignores("src/.venv.py", false));
    }

    #[test]
    fn a_file_in_an_ignored_folder_is_covered() {
        let ignore = list(&[".venv/"]);
        assert!(ignore.covers(".venv/bin/python"));
        assert!(!ignore.covers("venv/bin/python"));
        assert!(
            !ignore.covers(".venv"),
            "a file named .venv is not a folder"
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in ["", "!keep/", "../up", "a/../../b", "[z-a"] {
            assert!(
                IgnoreList::new(&[bad.to_string()]).is_err(),
                "`{bad}` was accepted"
            );
        }
    }
}
