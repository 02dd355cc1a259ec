//! A file's identity — device, inode, size, modification and change times — and the one rule
//! for when it may stand for the file's content: its times were settled before the content was
//! read (older than that moment by more than the file system's timestamp granularity), so a write
//! racing the read cannot have left them as they were (the "racily clean" rule git uses). The
//! change time cannot be set back without root. Every digest sluice remembers under a file's
//! identity — an artifact's within a run, a plugin's across runs — follows this rule.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// More than a kernel tick at the lowest common timer rate (100 Hz): file times come from the
/// coarse clock.
pub const SETTLE: Duration = Duration::from_millis(25);

/// Bytes of an encoded [`FileIdentity`].
pub const IDENTITY_BYTES: usize = 40;

/// What the file system says about a file that changes whenever its content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The racy-clean rule: both times lie before `instant` (when the content was read) by more
    /// than [`SETTLE`].
    pub fn settled_before(&self, instant: SystemTime) -> bool {
        let Ok(since_epoch) = instant.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit = i128::try_from(since_epoch.saturating_sub(SETTLE).as_nanos()).unwrap_or(0);
        self.mtime_ns < limit && self.ctime_ns < limit
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(IDENTITY_BYTES);
        bytes.extend_from_slice(&self.dev.to_le_bytes());
        bytes.extend_from_slice(&self.ino.to_le_bytes());
        bytes.extend_from_slice(&self.size.to_le_bytes());
        // Nanoseconds since 1970 fit in 64 bits until 2262.
        bytes.extend_from_slice(&(self.mtime_ns as i64).to_le_bytes());
        bytes.extend_from_slice(&(self.ctime_ns as i64).to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<[u8; 8]> { bytes.get(i * 8..i * 8 + 8)?.try_into().ok() };
        Some(Self {
            dev: u64::from_le_bytes(word(0)?),
            ino: u64::from_le_bytes(word(1)?),
            size: u64::from_le_bytes(word(2)?),
            mtime_ns: i128::from(i64::from_le_bytes(word(3)?)),
            ctime_ns: i128::from(i64::from_le_bytes(word(4)?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_just_written_is_not_settled_and_round_trips() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"x")?;
        let identity = FileIdentity::of(&std::fs::metadata(&path)?);
        assert!(!identity.settled_before(SystemTime::now() - SETTLE));
        assert!(identity.settled_before(SystemTime::now() + SETTLE * 4));
        assert_eq!(
            FileIdentity::from_bytes(&identity.to_bytes()),
            Some(identity)
        );
        std::fs::write(&path, b"y")?;
        assert_ne!(FileIdentity::of(&std::fs::metadata(&path)?), identity);
        Ok(())
    }
}
