//! What a stage leaves in its output folder before anything is published: links and special
//! files are removed (a link is a way out, a FIFO a way to hang the next reader), and so is every
//! file that holds a secret value or is larger than the stage could ever publish, and every empty
//! folder.

use std::fs;
use std::path::Path;

use crate::model::events::LogSource;
use crate::sandbox::capture::StageLog;

use super::OutputFolder;

/// What was removed from one output folder: names relative to it, and why.
#[derive(Debug, Default)]
pub struct Tidied {
    removed: Vec<(String, String)>,
}

impl Tidied {
    /// Why `name` was removed, if it was.
    pub fn removed(&self, name: &str) -> Option<&str> {
        self.removed
            .iter()
            .find(|(removed, _)| removed == name)
            .map(|(_, why)| why.as_str())
    }
}

/// Removes from the folder every entry that must never be published or stay in a run folder,
/// says so in the stage's log and record (`denied`), and returns what went.
pub(super) fn sweep(folder: &OutputFolder<'_>, log: &StageLog, denied: &mut Vec<String>) -> Tidied {
    let dir = folder.path();
    let mut tidied = Tidied::default();
    let mut stack = vec![dir.to_path_buf()];
    // Every folder found, parents before children.
    let mut folders = Vec::new();
    while let Some(next) = stack.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let why = if kind.is_dir() {
                folders.push(path.clone());
                stack.push(path);
                continue;
            } else if kind.is_symlink() {
                let target = fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("a symlink (to `{target}`)")
            } else if !kind.is_file() {
                "a special file (FIFO, socket or device)".to_string()
            } else if let Some(why) = unpublishable(folder, &path) {
                why
            } else {
                continue;
            };
            if fs::remove_file(&path).is_ok() {
                let what = format!("`{name}` in its output folder: {why}; removed");
                let _ = log.message(LogSource::Warn, &format!("sluice refused {what}"));
                denied.push(folder.shown(&what));
                tidied.removed.push((name, why));
            }
        }
    }
    // Empty folders are never outputs: they go, children first (a folder holding only empty
    // folders goes too), so no stage leaves a tree of them in the run folder.
    for folder in folders.iter().rev() {
        let _ = fs::remove_dir(folder);
    }
    tidied
}

/// Why a regular file must not stay: too large to ever publish, or holding a secret. Read in
/// bounded chunks, never whole.
fn unpublishable(folder: &OutputFolder<'_>, path: &Path) -> Option<String> {
    let size = fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > folder.limits.output_size {
        return Some(format!(
            "larger than its {} output size limit",
            crate::config::limits::fmt_bytes(folder.limits.output_size)
        ));
    }
    if folder.masker.is_empty() {
        return None;
    }
    match fs::File::open(path).map(|f| folder.masker.found_in_reader(f)) {
        Ok(Ok(false)) => None,
        Ok(Ok(true)) => Some("it contained a secret value".to_string()),
        // Unreadable: it cannot be checked, so it cannot stay.
        Ok(Err(_)) | Err(_) => Some("it could not be read to check it for secrets".into()),
    }
}
