//! A file's identity — device, inode, size, modification and change times — which changes
//! whenever its content does, and the plugin digests remembered under it, so an unchanged
//! plugin file is not read and hashed on every run.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ring::hmac;

use super::same_tag;

/// How long ago a file must have last changed for its identity to stand for its content: a
/// file rewritten within the timestamp granularity of a check could otherwise keep it.
const SETTLED: Duration = Duration::from_secs(2);

/// Bytes of an encoded [`Identity`].
pub(super) const IDENTITY_BYTES: usize = 40;

/// What the file system says about a file that changes whenever its content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least [`SETTLED`] ago (and not in the future).
    pub(super) fn settled(&self) -> bool {
        let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = (now.as_nanos() as i128) - SETTLED.as_nanos() as i128;
        self.mtime_ns <= limit && self.ctime_ns <= limit
    }

    pub(super) fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(IDENTITY_BYTES);
        bytes.extend_from_slice(&self.dev.to_le_bytes());
        bytes.extend_from_slice(&self.ino.to_le_bytes());
        bytes.extend_from_slice(&self.size.to_le_bytes());
        // Nanoseconds since 1970 fit in 64 bits until 2262.
        bytes.extend_from_slice(&(self.mtime_ns as i64).to_le_bytes());
        bytes.extend_from_slice(&(self.ctime_ns as i64).to_le_bytes());
        bytes
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Self> {
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

/// Where the remembered digest of the plugin file at `path` is kept.
fn digest_record(dir: &Path, path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = crate::model::artifacts::sha256_bytes(absolute.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.digest", &name[..32]))
}

fn digest_tag(key: &hmac::Key, path: &Path, identity: &Identity, sha256: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(b"plugin digest\0");
    context.update(path.as_os_str().as_encoded_bytes());
    context.update(&[0]);
    context.update(&identity.to_bytes());
    context.update(sha256);
    context.sign()
}

/// The sha256 recorded in `dir` for the plugin file at `path`, if the record verifies under
/// `key` and names the file's present `identity`.
pub(super) fn read_digest(
    dir: &Path,
    key: &hmac::Key,
    path: &Path,
    identity: Identity,
) -> Option<String> {
    let record = std::fs::read(digest_record(dir, path)).ok()?;
    let (recorded, rest) = record.split_at_checked(IDENTITY_BYTES)?;
    let (sha256, tag) = rest.split_at_checked(64)?;
    if Identity::from_bytes(recorded)? != identity {
        return None;
    }
    if !same_tag(digest_tag(key, path, &identity, sha256).as_ref(), tag) {
        return None;
    }
    String::from_utf8(sha256.to_vec()).ok()
}

/// Records that the plugin file at `path`, with `identity` (settled), has digest `sha256`.
pub(super) fn write_digest(
    dir: &Path,
    key: &hmac::Key,
    path: &Path,
    identity: Identity,
    sha256: &str,
) {
    let mut record = identity.to_bytes();
    record.extend_from_slice(sha256.as_bytes());
    record.extend_from_slice(digest_tag(key, path, &identity, sha256.as_bytes()).as_ref());
    // Only a shortcut: a record that cannot be written is hashed again next time.
    let _ = crate::atomic_file::write(&digest_record(dir, path), &record);
}
