//! Golden error messages: every file under tests/golden/pipeline and tests/golden/lock is a
//! user mistake, and the `.stderr` beside it is exactly what the user is told. `ok-*` files are
//! valid and must parse. `SLUICE_BLESS=1 cargo test -p sluice-config --test golden` rewrites
//! the `.stderr` files; read every change before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use sluice_config::Diagnostic;
use sluice_config::lockfile::Lock;

const PIPELINES: &str = "tests/golden/pipeline";
const LOCKS: &str = "tests/golden/lock";

/// Case files in `dir` ending in `.ext`, sorted, as paths relative to the crate (cargo runs
/// tests there), so messages show the same path on every machine.
fn cases(dir: &str, ext: &str) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => panic!("cannot list {dir} (run from the config crate): {err}"),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| Path::new(dir).join(entry.file_name()))
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn is_ok_case(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("ok-"))
}

fn blessing() -> bool {
    std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1")
}

/// Compares (or, when blessing, writes) each case's message; panics listing every mismatch.
fn check_errors(dir: &str, ext: &str, run: impl Fn(&Path) -> Result<(), Diagnostic>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases(dir, ext).into_iter().filter(|c| !is_ok_case(c)) {
        count += 1;
        let expected_file = case.with_extension("stderr");
        let actual = match run(&case) {
            Ok(()) => {
                failures.push(format!(
                    "{}: parsed, but it is a bad-input case",
                    case.display()
                ));
                continue;
            }
            Err(diag) => format!("{diag}\n"),
        };
        if !actual.contains("\n  = help: ") {
            failures.push(format!(
                "{}: the message has no `= help:`:\n{actual}",
                case.display()
            ));
        }
        if blessing() {
            if let Err(err) = fs::write(&expected_file, &actual) {
                failures.push(format!("cannot write {}: {err}", expected_file.display()));
            }
            continue;
        }
        match fs::read_to_string(&expected_file) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: message changed\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            )),
            Err(err) => failures.push(format!(
                "{}: cannot read {} ({err}); run with SLUICE_BLESS=1 to write it",
                case.display(),
                expected_file.display()
            )),
        }
    }
    assert!(count > 0, "no cases in {dir}");
    for stale in cases(dir, "stderr") {
        if !stale.with_extension(ext).exists() {
            failures.push(format!("{}: no case file beside it", stale.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Valid files must parse; returns how many there were.
fn check_ok(dir: &str, ext: &str, run: impl Fn(&Path) -> Result<(), Diagnostic>) -> usize {
    let oks: Vec<PathBuf> = cases(dir, ext)
        .into_iter()
        .filter(|c| is_ok_case(c))
        .collect();
    let failures: Vec<String> = oks
        .iter()
        .filter_map(|case| run(case).err().map(|diag| diag.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    oks.len()
}

fn load_pipeline(path: &Path) -> Result<(), Diagnostic> {
    sluice_config::load(path).map(drop)
}

fn load_lock(path: &Path) -> Result<(), Diagnostic> {
    Lock::load(path).map(drop)
}

#[test]
fn bad_pipelines_give_the_golden_message() {
    check_errors(PIPELINES, "toml", load_pipeline);
}

#[test]
fn bad_locks_give_the_golden_message() {
    check_errors(LOCKS, "lock", load_lock);
}

#[test]
fn valid_files_parse() {
    assert!(check_ok(PIPELINES, "toml", load_pipeline) >= 3);
    assert!(check_ok(LOCKS, "lock", load_lock) >= 1);
}

#[test]
fn a_missing_pipeline_file_is_a_clear_error() {
    let path = Path::new("tests/golden/no/such/pipeline.toml");
    let message = sluice_config::load(path)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(
        message.starts_with("tests/golden/no/such/pipeline.toml: cannot read the pipeline file"),
        "{message}"
    );
    assert!(message.contains("= help: check the path"), "{message}");
}

#[test]
fn a_missing_lock_is_an_empty_lock() -> Result<(), Diagnostic> {
    let lock = Lock::load(Path::new("tests/golden/no/such/pipeline.lock"))?;
    assert!(lock.changes().is_empty());
    assert!(!lock.needs_write());
    Ok(())
}
