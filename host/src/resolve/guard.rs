//! Two sluices resolving the same pipeline at once (two runs, or a run beside `sluice lock
//! --update`) must not lose each other's lock updates: the read → resolve → write of a pipeline's
//! lock file happens under an exclusive `flock` on the folder that holds it. The folder, not the
//! file, because the file is replaced by rename (a lock on the old inode would guard nothing), and
//! a folder needs no extra file in the user's checkout.

use std::fs::File;
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::model::events::{Event, EventSink, LogSource};

/// Held while a pipeline's lock file is read, resolved and written; the kernel lets go when it is
/// dropped or the process dies.
pub(super) struct LockGuard {
    _folder: Option<File>,
}

impl LockGuard {
    /// Waits (saying so once) until no other sluice is updating `lock_path`. A folder that cannot
    /// be opened (unreadable) is not locked; the lock file is then still written by rename.
    pub(super) async fn acquire(lock_path: &Path, events: &EventSink) -> LockGuard {
        let folder = lock_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(file) = File::open(folder) else {
            return LockGuard { _folder: None };
        };
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return LockGuard {
                _folder: Some(file),
            };
        }
        events.emit(Event::Log {
            stage: String::new(),
            source: LogSource::Warn,
            line: format!(
                "sluice: waiting for another sluice to finish updating {}",
                lock_path.display()
            ),
        });
        let waited = tokio::task::spawn_blocking(move || {
            rustix::fs::flock(&file, FlockOperation::LockExclusive).map(|()| file)
        })
        .await;
        LockGuard {
            _folder: waited.ok().and_then(Result::ok),
        }
    }
}
