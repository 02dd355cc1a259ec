//! Counts words, lines and bytes — the small crate the rust-crate example pipeline builds and
//! tests through `cargo`.

/// Counts of a text.
#[derive(Debug, PartialEq, Eq)]
pub struct Counts {
    pub lines: usize,
    pub words: usize,
    pub bytes: usize,
}

pub fn count(text: &str) -> Counts {
    Counts {
        lines: text.lines().count(),
        words: text.split_whitespace().count(),
        bytes: text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_an_empty_text() {
        assert_eq!(count(""), Counts { lines: 0, words: 0, bytes: 0 });
    }

    #[test]
    fn counts_words_across_lines() {
        assert_eq!(count("one two\nthree\n").words, 3);
        assert_eq!(count("one two\nthree\n").lines, 2);
    }
}
