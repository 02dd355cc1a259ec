//! What the fuzz targets share: the path every parser is given (inside an empty folder of this
//! process's own, so nothing resolved against it exists) and the checks every diagnostic a user
//! could be shown must pass — it renders without a panic, names the file, and says what to do.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sluice_config::Diagnostic;

/// `<empty folder>/<file_name>`. The folder is made once per process under the temporary
/// directory (`cargo xtask fuzz` points TMPDIR at a scratch folder it empties before each run).
pub fn scratch_file(file_name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sluice-fuzz-{}", std::process::id()));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot make the scratch folder {}: {err}", dir.display());
        }
        dir
    });
    dir.join(file_name)
}

/// The text a parser is given for `data`: the bytes as they are when they are UTF-8; otherwise
/// [`sluice_config::decode`] must refuse them with a diagnostic (checked and rendered here), and
/// the parser gets the lossy decoding, so invalid bytes still reach it as U+FFFD.
pub fn text_of<'a>(path: &Path, data: &'a [u8]) -> Cow<'a, str> {
    match std::str::from_utf8(data) {
        Ok(text) => {
            if let Err(diag) = sluice_config::decode(path, data.to_vec()) {
                panic!("decode refused valid UTF-8: {diag}");
            }
            Cow::Borrowed(text)
        }
        Err(_) => {
            match sluice_config::decode(path, data.to_vec()) {
                Ok(_) => panic!("decode accepted invalid UTF-8"),
                Err(diag) => {
                    check_placed(&diag);
                    render(&diag, path);
                }
            }
            String::from_utf8_lossy(data)
        }
    }
}

/// A user's mistake as the user sees it: it must render as the file (and its place, when it
/// has one), the message, a well-formed source excerpt when placed, and a `= help:` hint (what
/// the golden tests require of every refused input).
pub fn render(diag: &Diagnostic, path: &Path) -> String {
    let text = diag.to_string();
    let mut head = path.display().to_string();
    if let (Some(line), Some(column)) = (diag.line, diag.column) {
        assert!(
            line >= 1 && column >= 1,
            "line and column are 1-based: {text}"
        );
        head = format!("{head}:{line}:{column}");
    }
    head = format!("{head}: {}", diag.message);
    let Some(hint) = &diag.hint else {
        panic!("a diagnostic without a hint: {text}");
    };
    let tail = format!("\n  = help: {hint}");
    let Some(excerpt) = text
        .strip_prefix(&head)
        .and_then(|rest| rest.strip_suffix(&tail))
    else {
        panic!("not `file[:line:column]: message ... = help: hint`: {text:?}");
    };
    match diag.line {
        Some(line) => check_excerpt(excerpt, line, &text),
        None => assert!(excerpt.is_empty(), "an excerpt without a place: {text:?}"),
    }
    text
}

/// Every placed diagnostic carries a line and a column together.
pub fn check_placed(diag: &Diagnostic) {
    assert!(
        diag.line.is_some() && diag.column.is_some(),
        "a diagnostic without a place: {diag}"
    );
}

/// The excerpt under a placed message: a blank gutter row, the `N | source line` row, and a
/// marker row of spaces then at least one `^`, starting no further right than just past the end
/// of the shown line.
fn check_excerpt(excerpt: &str, line: usize, text: &str) {
    let gutter = " ".repeat(line.to_string().len());
    let rows: Vec<&str> = excerpt.split('\n').collect();
    let [first, blank, source, marker] = rows.as_slice() else {
        panic!("the excerpt is not three rows: {text:?}");
    };
    assert!(
        first.is_empty(),
        "the excerpt does not start a line: {text:?}"
    );
    assert_eq!(*blank, format!("{gutter} |"), "blank gutter row: {text:?}");
    let Some(shown) = source.strip_prefix(&format!("{line} | ")) else {
        panic!("no `{line} | ` source row: {text:?}");
    };
    let Some(marker) = marker.strip_prefix(&format!("{gutter} | ")) else {
        panic!("no marker row under the source row: {text:?}");
    };
    let carets = marker.trim_start_matches(' ');
    assert!(
        !carets.is_empty() && carets.chars().all(|c| c == '^'),
        "the marker row is not spaces then carets: {text:?}"
    );
    let indent = marker.len() - carets.len();
    assert!(
        indent <= shown.chars().count(),
        "the marker starts past the end of the line: {text:?}"
    );
}
