//! pipeline.lock: any bytes are either a lock or one diagnostic that renders. A lock that was
//! read renders, and what it renders reads back as the same lock with nothing to write — sluice
//! must always be able to read the file it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_config::lockfile::Lock;
use sluice_fuzz::{render, scratch_file, text_of};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("pipeline.lock");
    let text = text_of(&path, data);
    let lock = match Lock::parse(&path, &text) {
        Ok(lock) => lock,
        Err(diag) => {
            render(&diag, &path);
            return;
        }
    };
    assert!(!lock.needs_write(), "a lock just read has changes");
    let rendered = match lock.render() {
        Ok(rendered) => rendered,
        Err(err) => panic!("a lock that was read does not render: {err}"),
    };
    let again = match Lock::parse(&path, &rendered) {
        Ok(again) => again,
        Err(diag) => panic!("sluice cannot read the lock it writes: {diag}\n{rendered}"),
    };
    assert!(!again.needs_write(), "a rendered lock reads back changed");
    match again.render() {
        Ok(twice) => assert_eq!(twice, rendered, "rendering is not stable"),
        Err(err) => panic!("a rendered lock does not render again: {err}"),
    }
});
