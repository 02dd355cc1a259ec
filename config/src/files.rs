//! Reading a file a user named: only a regular file — never a device, FIFO or socket, which can
//! be read forever or block forever — and only up to a size bound, so bad input cannot eat the
//! host's memory. Opening does not block on a FIFO swapped in after the check.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest pipeline file or lockfile sluice reads.
pub const MAX_TEXT_FILE_BYTES: u64 = 4 << 20;
/// The largest secret or key file sluice reads.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;
/// The largest plugin component sluice loads (the same cap as a registry download).
pub const MAX_PLUGIN_BYTES: u64 = 512 << 20;

/// Why a named path cannot be used as what it was named for.
pub fn kind_problem(path: &Path, want_dir: bool) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.raw_os_error() == Some(40) => {
            return Some("is a symlink loop".into());
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Some("does not exist".into());
        }
        Err(err) => return Some(format!("cannot be read: {err}")),
    };
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let fits = if want_dir {
        kind.is_dir()
    } else {
        kind.is_file()
    };
    (!fits).then(|| {
        format!(
            "is {what}, not {}",
            if want_dir {
                "a directory"
            } else {
                "a regular file"
            }
        )
    })
}

/// The bytes of the regular file at `path`, refused when it is anything else or larger than
/// `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    if let Some(problem) = kind_problem(path, false) {
        return Err(problem);
    }
    // O_NONBLOCK: if a FIFO replaced the file since the check, opening it does not wait for a
    // writer; the check on the open file below refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o4000)
        .open(path)
        .map_err(|err| format!("cannot be opened: {err}"))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot be read: {err}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > max {
        return Err(too_large(meta.len(), max));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    File::take(file, max + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot be read: {err}"))?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64, max));
    }
    Ok(bytes)
}

fn too_large(size: u64, max: u64) -> String {
    format!(
        "is {} bytes, more than the {} sluice reads for it",
        size,
        crate::limits::fmt_bytes(max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_dirs_loops_and_big_files_are_refused() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(read_bounded(Path::new("/dev/zero"), 10).is_err_and(|e| e.contains("a device")));
        assert!(read_bounded(dir.path(), 10).is_err_and(|e| e.contains("a directory")));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(made.success());
        assert!(read_bounded(&fifo, 10).is_err_and(|e| e.contains("FIFO")));
        let a = dir.path().join("a");
        std::os::unix::fs::symlink(dir.path().join("b"), &a)?;
        std::os::unix::fs::symlink(&a, dir.path().join("b"))?;
        assert!(read_bounded(&a, 10).is_err_and(|e| e.contains("symlink loop")));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 11])?;
        assert!(read_bounded(&big, 10).is_err_and(|e| e.contains("more than the 10 B")));
        assert_eq!(read_bounded(&big, 11).ok(), Some(vec![b'x'; 11]));
        assert_eq!(kind_problem(dir.path(), true), None);
        assert!(kind_problem(&big, true).is_some_and(|e| e.contains("not a directory")));
        Ok(())
    }
}
