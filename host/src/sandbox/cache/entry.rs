//! One compiled component on disk and how it is trusted: its code verified under the key once,
//! then — while the file keeps the identity recorded then — mapped without reading it again.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ring::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{TAG_BYTES, same_tag};
use crate::model::identity::{FileIdentity as Identity, IDENTITY_BYTES};

/// One compiled component on disk: `<sha256>.cwasm`, exactly what wasmtime serialized, and
/// `<sha256>.tag`: the HMAC over (slot, code), then the code file's identity when it was
/// checked and an HMAC over (slot, code tag, identity).
pub(super) struct Entry {
    sha256: String,
    code: PathBuf,
    tag: PathBuf,
}

/// Bytes of a `.tag` file.
pub(super) const TAG_FILE_BYTES: usize = TAG_BYTES + IDENTITY_BYTES + TAG_BYTES;

impl Entry {
    pub(super) fn new(dir: &Path, sha256: &str) -> Self {
        Self {
            sha256: sha256.to_string(),
            code: dir.join(format!("{sha256}.cwasm")),
            tag: dir.join(format!("{sha256}.tag")),
        }
    }

    /// The tag over the code: it names the slot (the component's sha256) as well as the bytes,
    /// so a valid entry of another plugin moved into this slot does not verify.
    fn code_tag(&self, key: &hmac::Key, code: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(key);
        context.update(self.sha256.as_bytes());
        context.update(&[0]);
        context.update(code);
        context.sign()
    }

    fn identity_tag(&self, key: &hmac::Key, code_tag: &[u8], identity: &Identity) -> hmac::Tag {
        let mut context = hmac::Context::with_key(key);
        context.update(b"identity\0");
        context.update(self.sha256.as_bytes());
        context.update(code_tag);
        context.update(&identity.to_bytes());
        context.sign()
    }

    /// The component, if the entry verifies and wasmtime accepts it.
    pub(super) fn load(&self, engine: &Engine, key: &hmac::Key) -> Option<Component> {
        let tags = std::fs::read(&self.tag).ok()?;
        if tags.len() != TAG_FILE_BYTES {
            return None;
        }
        let (code_tag, rest) = tags.split_at(TAG_BYTES);
        let (identity, identity_tag) = rest.split_at(IDENTITY_BYTES);
        let meta = std::fs::symlink_metadata(&self.code).ok()?;
        if !meta.is_file() {
            return None;
        }
        let now = Identity::of(&meta);
        let known = Identity::from_bytes(identity).is_some_and(|recorded| recorded == now)
            && same_tag(
                self.identity_tag(key, code_tag, &now).as_ref(),
                identity_tag,
            );
        if known {
            return map_file(engine, &self.code).ok();
        }
        // Unknown identity: read once into memory, so what is verified is exactly what loads.
        let read_at = std::time::SystemTime::now();
        let code = std::fs::read(&self.code).ok()?;
        if !same_tag(self.code_tag(key, &code).as_ref(), code_tag) {
            return None;
        }
        let component = deserialize(engine, &code).ok()?;
        if now.settled_before(read_at) {
            let _ = self.write_tags(key, code_tag, Some(now));
        }
        Some(component)
    }

    pub(super) fn store(&self, component: &Component, key: &hmac::Key) -> Result<()> {
        let code = component
            .serialize()
            .map_err(crate::sandbox::trap::into_anyhow)?;
        crate::atomic_file::write(&self.code, &code)?;
        // Just written: its identity is not settled yet; the first load after it records it.
        self.write_tags(key, self.code_tag(key, &code).as_ref(), None)
    }

    fn write_tags(
        &self,
        key: &hmac::Key,
        code_tag: &[u8],
        identity: Option<Identity>,
    ) -> Result<()> {
        let mut bytes = code_tag.to_vec();
        match identity {
            Some(identity) => {
                bytes.extend_from_slice(&identity.to_bytes());
                bytes.extend_from_slice(self.identity_tag(key, code_tag, &identity).as_ref());
            }
            None => bytes.resize(TAG_FILE_BYTES, 0),
        }
        crate::atomic_file::write(&self.tag, &bytes)
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize` trusts its input to be compiled code written by wasmtime. These
    // bytes carry an HMAC (checked by the caller) under a per-user key that only this user can
    // read, over exactly these bytes and the slot they are stored in: only this module, for
    // this component, can have written them. wasmtime still checks the header and version.
    unsafe { Component::deserialize(engine, code) }
}

#[allow(unsafe_code)]
fn map_file(engine: &Engine, code: &Path) -> wasmtime::Result<Component> {
    // SAFETY: as for `deserialize`: the caller found the file with the identity recorded, under
    // the key, when its bytes were last verified — the same inode, size and times, so the same
    // bytes. Entries are only ever replaced by rename, never written in place, so the mapped
    // file does not change under wasmtime.
    unsafe { Component::deserialize_file(engine, code) }
}
