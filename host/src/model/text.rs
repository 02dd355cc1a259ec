//! Text a plugin supplies (log lines, summaries, failure messages, what `describe` says) is data:
//! before it is recorded or shown it loses every control character — ESC/CSI/OSC sequences, BEL,
//! CR, other C0 and C1 codes, bidirectional overrides — which are shown escaped (`\u{1b}`), never
//! interpreted, and it is cut to a bounded size. A newline is escaped too, so plugin text can never
//! start a line that looks like sluice's own or a CI system's (`::error::`).

/// Summaries and failure messages are cut here.
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;

/// Names, versions and descriptions from `describe` are cut here.
pub const MAX_FIELD_BYTES: usize = 1 << 10;

/// One line of display-safe text, at most `max_bytes` (plus a note saying how much was cut).
pub fn one_line(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut cut_at = None;
    for (index, c) in text.char_indices() {
        if out.len() >= max_bytes {
            cut_at = Some(index);
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    if let Some(index) = cut_at {
        out.push_str(&format!("… ({} more bytes cut)", text.len() - index));
    }
    out
}

/// Characters a terminal or a log viewer would act on instead of showing.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `text` is already safe to show as one line (nothing to escape).
pub fn is_display_safe(text: &str) -> bool {
    !text.chars().any(|c| c == '\n' || c == '\r' || is_unsafe(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_shown_not_interpreted() {
        let hostile = "\x1b]0;pwned\x07\x1b[2J\rok\n::error::forged\u{9b}31m\u{202e}txt";
        let shown = one_line(hostile, 1000);
        assert!(is_display_safe(&shown), "{shown:?}");
        assert_eq!(
            shown,
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rok\\n::error::forged\\u{9b}31m\\u{202e}txt"
        );
        assert!(!shown.lines().nth(1).is_some_and(|l| l.starts_with("::")));
    }

    #[test]
    fn plain_text_is_unchanged_and_long_text_is_cut_on_a_char_boundary() {
        assert_eq!(one_line("tests: 3 passed\tok", 100), "tests: 3 passed\tok");
        let long = "é".repeat(10);
        let cut = one_line(&long, 5);
        assert!(cut.starts_with("ééé…"), "{cut}");
        assert!(cut.ends_with("(14 more bytes cut)"), "{cut}");
    }
}
