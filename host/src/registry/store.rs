//! The local plugin store: registry blobs kept by digest, so a warm run needs no network and an
//! `--offline` run needs nothing else. Every read re-checks the digest; a changed file is
//! removed and reported, never used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::plugin_ref::{PluginRef, check_digest};
use crate::model::artifacts::{sha256_bytes, sha256_file};
use crate::trust::signing::Envelope;

/// A file in the store whose content no longer matches its name.
#[derive(Debug, thiserror::Error)]
#[error(
    "the local plugin store's copy of {digest} is corrupt (its content hashes to {actual}); it was removed"
)]
pub struct CorruptBlob {
    pub digest: String,
    pub actual: String,
}

#[derive(Debug, Clone)]
pub struct PluginStore {
    root: PathBuf,
}

impl PluginStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$SLUICE_PLUGIN_STORE`, else `~/.cache/sluice/plugins`, else `.sluice/plugins`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("SLUICE_PLUGIN_STORE") {
            return PathBuf::from(dir);
        }
        dirs::cache_dir()
            .map(|d| d.join("sluice").join("plugins"))
            .unwrap_or_else(|| PathBuf::from(".sluice/plugins"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `digest`'s blob lives; `None` unless it is `sha256:` + 64 hex digits, so no
    /// digest from a lockfile or a registry can name a path outside the store.
    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        check_digest(digest).ok()?;
        let hex = digest.strip_prefix("sha256:")?;
        Some(self.root.join("blobs").join("sha256").join(hex))
    }

    /// The stored file for `digest`, after checking its content; `None` when not stored.
    pub fn verified_blob(&self, digest: &str) -> Result<Option<PathBuf>, CorruptBlob> {
        let Some(path) = self.blob_path(digest) else {
            return Ok(None);
        };
        if !path.is_file() {
            return Ok(None);
        }
        let actual = match sha256_file(&path) {
            Ok((hex, _)) => format!("sha256:{hex}"),
            Err(_) => String::from("(unreadable)"),
        };
        keep_if_intact(&path, digest, actual).map(|()| Some(path))
    }

    /// The stored bytes for `digest`, checked; `None` when not stored.
    pub fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, CorruptBlob> {
        let Some(path) = self.blob_path(digest) else {
            return Ok(None);
        };
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(None);
        };
        let actual = format!("sha256:{}", sha256_bytes(&bytes));
        keep_if_intact(&path, digest, actual).map(|()| Some(bytes))
    }

    /// Stores bytes already checked against `digest`; returns the file.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self
            .blob_path(digest)
            .with_context(|| format!("`{digest}` is not a sha256 digest"))?;
        // Only sluice writes blobs, and only as files: anything else in the slot is damage.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
            std::fs::remove_dir_all(&path)
                .or_else(|_| std::fs::remove_file(&path))
                .with_context(|| format!("cannot clear {}", path.display()))?;
        }
        crate::atomic_file::write(&path, bytes)?;
        Ok(path)
    }

    fn tag_path(&self, reference: &PluginRef, tag: &str) -> PathBuf {
        self.root
            .join("tags")
            .join(reference.registry.replace(':', "_"))
            .join(&reference.repository)
            .join(tag)
    }

    /// Remembers which manifest a tag named when it was last resolved online.
    pub fn remember_tag(&self, reference: &PluginRef, digest: &str) -> Result<()> {
        match &reference.tag {
            Some(tag) => {
                crate::atomic_file::write(&self.tag_path(reference, tag), digest.as_bytes())
            }
            None => Ok(()),
        }
    }

    /// The manifest a tag named when it was last resolved online.
    pub fn remembered_tag(&self, reference: &PluginRef) -> Option<String> {
        let tag = reference.tag.as_ref()?;
        let text = std::fs::read_to_string(self.tag_path(reference, tag)).ok()?;
        Some(text.trim().to_string()).filter(|d| check_digest(d).is_ok())
    }

    fn signatures_path(&self, manifest_digest: &str) -> Option<PathBuf> {
        check_digest(manifest_digest).ok()?;
        let hex = manifest_digest.strip_prefix("sha256:")?;
        Some(self.root.join("signatures").join(format!("{hex}.json")))
    }

    /// Signature envelopes fetched earlier for a manifest (they are checked on every use).
    pub fn signatures(&self, manifest_digest: &str) -> Vec<Envelope> {
        self.signatures_path(manifest_digest)
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Adds envelopes to the ones kept for a manifest.
    pub fn add_signatures(&self, manifest_digest: &str, envelopes: &[Envelope]) -> Result<()> {
        let mut all = self.signatures(manifest_digest);
        for envelope in envelopes {
            if !all.contains(envelope) {
                all.push(envelope.clone());
            }
        }
        let bytes = serde_json::to_vec_pretty(&all).context("cannot encode signatures")?;
        let path = self
            .signatures_path(manifest_digest)
            .with_context(|| format!("`{manifest_digest}` is not a sha256 digest"))?;
        crate::atomic_file::write(&path, &bytes)
    }
}

/// Removes a stored file whose content hash `actual` is not the `digest` it is stored under.
fn keep_if_intact(path: &Path, digest: &str, actual: String) -> Result<(), CorruptBlob> {
    if actual == digest {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    Err(CorruptBlob {
        digest: digest.to_string(),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_blob_is_refused_and_removed() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = PluginStore::new(dir.path());
        let bytes = b"component bytes";
        let digest = format!("sha256:{}", sha256_bytes(bytes));
        let path = store.put_blob(&digest, bytes)?;
        assert_eq!(
            store.verified_blob(&digest).ok().flatten(),
            Some(path.clone())
        );
        std::fs::write(&path, b"evil bytes")?;
        assert!(store.verified_blob(&digest).is_err());
        assert!(!path.exists());
        assert!(matches!(store.read_blob(&digest), Ok(None)));
        Ok(())
    }

    #[test]
    fn a_digest_that_is_not_one_never_becomes_a_path() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = PluginStore::new(dir.path().join("store"));
        std::fs::write(dir.path().join("outside"), b"keep")?;
        for bad in [
            "sha256:../../outside",
            "../outside",
            "sha256:",
            "sha256:ABC/x",
        ] {
            assert!(store.put_blob(bad, b"x").is_err(), "{bad}");
            assert!(matches!(store.verified_blob(bad), Ok(None)), "{bad}");
            assert!(matches!(store.read_blob(bad), Ok(None)), "{bad}");
            assert!(store.add_signatures(bad, &[]).is_err(), "{bad}");
            assert!(store.signatures(bad).is_empty());
        }
        assert_eq!(std::fs::read(dir.path().join("outside"))?, b"keep");
        assert!(!dir.path().join("store").exists(), "nothing written");
        Ok(())
    }
}
