//! The diagnostic renderer alone: a place (line, column, excerpt, marker) for any span of any
//! text — out of range, reversed, inside a multi-byte character, on `\r\n`, lone `\r` or very
//! long lines — and its rendering; and the UTF-8 decoder's diagnostic for any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_config::Diagnostic;
use sluice_config::diagnostic::{Site, line_col};
use sluice_fuzz::{check_placed, render, scratch_file};

fuzz_target!(|input: (&str, u16, u16, &str, &[u8])| {
    let (source, start, end, message, bytes) = input;
    let path = scratch_file("pipeline.toml");
    let span = usize::from(start)..usize::from(end);
    let lines = source.matches('\n').count() + 1;
    let (line, column) = line_col(source, span.start);
    assert!(
        (1..=lines).contains(&line) && column >= 1,
        "{line}:{column}"
    );
    let site = Site::at(&path, source, span.clone());
    assert_eq!((site.line, site.column), (line, column));
    assert!(site.width >= 1);
    assert!(!site.snippet.contains('\n'));
    let diag = Diagnostic::at(&path, source, span, message).with_hint("fuzz");
    assert_eq!(diag, site.error(message).with_hint("fuzz"));
    render(&diag, &path);
    if let Err(diag) = sluice_config::decode(&path, bytes.to_vec()) {
        check_placed(&diag);
        render(&diag, &path);
    }
});
