//! Output limits enforced while a stage runs: its output folder is measured as it grows, and a
//! stage that writes past its size or file-count limit is stopped at the limit — not when its
//! timeout finally fires.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::limits::{Limits, fmt_bytes};

/// Measures `dir` until it holds more than `limits` allow, then says which limit it broke.
/// Never returns while the folder stays within its limits.
pub(super) async fn overrun(dir: &Path, limits: Limits) -> String {
    loop {
        let started = Instant::now();
        let (files, bytes) = measure(dir, limits.outputs);
        if files > limits.outputs {
            return format!(
                "created more than {} files and folders in its output folder, its output limit, and was stopped",
                limits.outputs
            );
        }
        if bytes > limits.output_size {
            return format!(
                "wrote more than its {} output size limit and was stopped",
                fmt_bytes(limits.output_size)
            );
        }
        // Measuring costs a walk of the folder: never more than a fifth of the stage's time.
        let pause = (started.elapsed() * 4).max(Duration::from_millis(20));
        tokio::time::sleep(pause).await;
    }
}

/// Entries (files and folders) and apparent bytes under `dir`, counting at most `max_files + 1`
/// entries. A sparse file counts at its full length.
fn measure(dir: &Path, max_files: u64) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                // A folder is an entry too: folders alone can use up a disk's inodes.
                Ok(meta) if meta.is_dir() => {
                    stack.push(entry.path());
                    files += 1;
                    if files > max_files {
                        return (files, bytes);
                    }
                }
                Ok(meta) => {
                    files += 1;
                    bytes = bytes.saturating_add(meta.len());
                    if files > max_files {
                        return (files, bytes);
                    }
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}

/// Removes everything in `dir` (not `dir` itself): what a stage stopped at a limit left behind.
pub(super) fn empty(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_past_its_limits_is_reported() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = Limits {
            outputs: 3,
            output_size: 10,
            ..Limits::default()
        };
        fs::create_dir(dir.path().join("sub"))?;
        fs::write(dir.path().join("sub/a"), b"12345")?;
        // `sub` and `sub/a`: two entries of three.
        let within = tokio::time::timeout(Duration::from_millis(100), overrun(dir.path(), limits));
        assert!(within.await.is_err(), "within its limits: never returns");
        fs::write(dir.path().join("b"), b"123456")?;
        let why = overrun(dir.path(), limits).await;
        assert!(why.contains("10 B output size limit"), "{why}");
        fs::write(dir.path().join("b"), b"")?;
        let within = tokio::time::timeout(Duration::from_millis(100), overrun(dir.path(), limits));
        assert!(within.await.is_err(), "three entries: within its limits");
        fs::create_dir(dir.path().join("c"))?;
        let why = overrun(dir.path(), limits).await;
        assert!(why.contains("more than 3 files and folders"), "{why}");
        empty(dir.path());
        assert_eq!(fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }
}
