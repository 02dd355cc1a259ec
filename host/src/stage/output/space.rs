//! A full disk, said plainly. A stage that fails while the disk holding its output folder has no
//! room left gets that named in its message (what the sandbox passes on to the plugin is only "I/O
//! error"), and its unfinished, unpublished outputs are removed so the run's record still fits.

use std::path::Path;

use crate::model::report::StageRecord;

/// Below this many free bytes the disk counts as full: a stage's write failed for want of room.
const FULL_BELOW: u64 = 1024 * 1024;

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// If `record` (a stage that did not succeed) ran out of room in `out_dir`: says so in its
/// message and frees what the stage left half-written there.
pub(super) fn explain_full_disk(record: &mut StageRecord, out_dir: &Path) {
    let Some(free) = free_bytes(out_dir) else {
        return;
    };
    if free >= FULL_BELOW {
        return;
    }
    let mut note = format!(
        "no space left on the disk holding {} ({} free)",
        out_dir.display(),
        bytesize::ByteSize::b(free).display().iec()
    );
    // A failed stage publishes nothing; what it wrote is unfinished and would keep the disk full.
    if record.outputs.is_empty() {
        super::watch::empty(out_dir);
        let removed = free_bytes(out_dir).unwrap_or(free).saturating_sub(free);
        if removed > 0 {
            note.push_str(&format!(
                "; its unfinished outputs ({}) were removed so the run's record fits",
                bytesize::ByteSize::b(removed).display().iec()
            ));
        }
    }
    note.push_str(": free some space (or move the runs folder with --runs-dir) and run again");
    record.message = Some(match record.message.take() {
        Some(message) => format!("{message} — {note}"),
        None => note,
    });
}
