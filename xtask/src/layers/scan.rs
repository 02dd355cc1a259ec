//! A small Rust source scanner for the layer check: blanks comments and literals (keeping line
//! numbers), cuts a file at its first `#[cfg(test)]` line, and finds the module paths the code
//! names — `crate::`, `super::` and `self::` paths, whole `use` trees (groups spanning lines
//! included) and `mod name;` declarations. No parser: rustfmt-shaped code is all it must read.

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `crate::` (or `$crate::`)
    Crate,
    /// `super::` repeated n times (`self::super::` counts too)
    Super(usize),
    /// `self::`
    SelfMod,
    /// A `use` path without a prefix (relative to the module, edition 2018+)
    Relative,
    /// A path from another crate's root: `roots[i]::` (see [`path_refs`])
    Extern(usize),
}

/// One path the code names, with the line of every segment (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    pub base: Base,
    pub segments: Vec<(String, usize)>,
    /// The name a `use` gives it (`as x`, else its last segment); None outside `use`.
    pub alias: Option<String>,
}

/// The code of `text` with comments, string and char literals blanked (newlines kept).
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i).filter(|_| !prev_ident) {
            // r"..", r#".."#, br"..", cr"..": no escapes, ends at `"` + the same number of #.
            let open = chars[i..].iter().position(|&c| c == '"').unwrap_or(0) + i;
            for _ in i..=open {
                out.push(' ');
            }
            i = open + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\''); a lifetime or label has no closing quote.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
            if i < chars.len() && chars[i] == '\'' {
                out.push(' ');
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The number of `#` when a raw string (`r"`, `r#"`, `br"`, `cr#"`, ...) starts at `i`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `code` up to its first line starting with `#[cfg(test)]`: unit tests may use anything.
pub fn before_tests(code: &str) -> &str {
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        if line.trim_start().starts_with("#[cfg(test)]") {
            return &code[..offset];
        }
        offset += line.len();
    }
    code
}

/// The `mod name;` declarations (file modules, not inline `mod name { .. }`).
pub fn mod_decls(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines() {
        let mut rest = line.trim();
        if let Some(after) = rest.strip_prefix("pub") {
            rest = after.trim_start();
            if rest.starts_with('(') {
                match rest.find(')') {
                    Some(close) => rest = rest[close + 1..].trim_start(),
                    None => continue,
                }
            }
        }
        let Some(after) = rest.strip_prefix("mod ") else {
            continue;
        };
        let name: String = after
            .trim_start()
            .chars()
            .take_while(|&c| is_ident(c))
            .collect();
        let tail = after.trim_start()[name.len()..].trim();
        if !name.is_empty() && tail == ";" {
            names.push(name);
        }
    }
    names
}

/// A cursor over blanked code that tracks the line.
struct Cursor<'a> {
    chars: &'a [char],
    pos: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Consumes `::` (after optional whitespace) if it comes next.
    fn eat_path_sep(&mut self) -> bool {
        let (pos, line) = (self.pos, self.line);
        self.skip_ws();
        if self.peek() == Some(':') && self.chars.get(self.pos + 1) == Some(&':') {
            self.pos += 2;
            return true;
        }
        (self.pos, self.line) = (pos, line);
        false
    }

    fn ident(&mut self) -> Option<(String, usize)> {
        self.skip_ws();
        let line = self.line;
        let start = self.pos;
        while self.peek().is_some_and(is_ident) {
            self.pos += 1;
        }
        (self.pos > start).then(|| (self.chars[start..self.pos].iter().collect(), line))
    }
}

/// Every `crate::`/`super::`/`self::`/`<root>::` path in blanked `code` (`roots`: names of
/// other crates worth following), and every `use` tree, expanded into one [`PathRef`] per leaf.
pub fn path_refs(code: &str, roots: &[String]) -> Vec<PathRef> {
    let chars: Vec<char> = code.chars().collect();
    let mut cur = Cursor {
        chars: &chars,
        pos: 0,
        line: 1,
    };
    let mut refs = Vec::new();
    let mut prev_word = String::new();
    while let Some(c) = cur.peek() {
        let at_word = is_ident(c) && (cur.pos == 0 || !is_ident(chars[cur.pos - 1]));
        if !at_word {
            if !c.is_whitespace() {
                prev_word.clear();
            }
            cur.bump();
            continue;
        }
        let Some((word, line)) = cur.ident() else {
            cur.bump();
            continue;
        };
        let in_use = prev_word == "use";
        let base = match word.as_str() {
            "crate" => Some(Base::Crate),
            "super" => Some(Base::Super(1)),
            "self" => Some(Base::SelfMod),
            _ => roots.iter().position(|r| *r == word).map(Base::Extern),
        };
        match base {
            Some(base) if cur.eat_path_sep() => tree(&mut cur, base, Vec::new(), in_use, &mut refs),
            _ if in_use => {
                let first = vec![(word.clone(), line)];
                if cur.eat_path_sep() {
                    tree(&mut cur, Base::Relative, first, true, &mut refs);
                } else {
                    leaf(Base::Relative, first, true, &mut cur, &mut refs);
                }
            }
            _ => {}
        }
        prev_word = word;
    }
    refs
}

/// The rest of a path after `prefix::`: more segments, a `{ .. }` group, `*` or `<` (generics).
fn tree(
    cur: &mut Cursor<'_>,
    mut base: Base,
    mut prefix: Vec<(String, usize)>,
    in_use: bool,
    refs: &mut Vec<PathRef>,
) {
    loop {
        cur.skip_ws();
        match cur.peek() {
            Some('{') => {
                cur.bump();
                loop {
                    cur.skip_ws();
                    match cur.peek() {
                        Some('}') => {
                            cur.bump();
                            return;
                        }
                        Some(',') => cur.bump(),
                        None => return,
                        Some(_) => {
                            let before = cur.pos;
                            tree(cur, base, prefix.clone(), in_use, refs);
                            if cur.pos == before {
                                cur.bump();
                            }
                        }
                    }
                }
            }
            Some('*') => {
                cur.bump();
                refs.push(PathRef {
                    base,
                    segments: prefix,
                    alias: None,
                });
                return;
            }
            Some(c) if is_ident(c) => {
                let Some((word, line)) = cur.ident() else {
                    return;
                };
                match word.as_str() {
                    "super" if prefix.is_empty() => {
                        base = match base {
                            Base::Super(n) => Base::Super(n + 1),
                            _ => Base::Super(1),
                        };
                    }
                    // `{self, ..}` in a group names the prefix itself.
                    "self" => {}
                    _ => prefix.push((word, line)),
                }
                if !cur.eat_path_sep() {
                    leaf(base, prefix, in_use, cur, refs);
                    return;
                }
            }
            _ => {
                refs.push(PathRef {
                    base,
                    segments: prefix,
                    alias: None,
                });
                return;
            }
        }
    }
}

/// Records a finished path, reading `as alias` when inside `use`.
fn leaf(
    base: Base,
    segments: Vec<(String, usize)>,
    in_use: bool,
    cur: &mut Cursor<'_>,
    refs: &mut Vec<PathRef>,
) {
    let alias = in_use.then(|| {
        let (pos, line) = (cur.pos, cur.line);
        match cur.ident() {
            Some((word, _)) if word == "as" => cur.ident().map(|(name, _)| name),
            _ => {
                (cur.pos, cur.line) = (pos, line);
                None
            }
        }
        .or_else(|| segments.last().map(|(name, _)| name.clone()))
    });
    refs.push(PathRef {
        base,
        segments,
        alias: alias.flatten(),
    });
}
