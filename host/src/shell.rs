//! Text the CLI prints as a command to paste: each path or value quoted as one shell word, so the
//! hint works as it is, whatever a folder is called.

/// `text` as one shell word: as it is when it holds only characters no shell treats specially,
/// else single-quoted (a `'` inside written as `'\''`).
pub fn quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./+=:@%,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
