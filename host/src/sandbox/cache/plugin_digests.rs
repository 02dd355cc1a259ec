//! Plugin digests remembered on disk under the plugin file's identity
//! ([`crate::model::identity`]), so an unchanged plugin file is not read and hashed on every run.

use std::path::{Path, PathBuf};

use ring::hmac;

use super::same_tag;
use crate::model::identity::{FileIdentity as Identity, IDENTITY_BYTES};

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
