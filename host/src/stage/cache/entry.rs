//! One stage-cache entry: the outputs it keeps (by name, size and sha256), what the stage said,
//! the parts of its key, and a tag under the per-user key over all of it — so an entry planted
//! or edited by anyone without that key, however consistent its files and digests, is a miss.

use std::collections::BTreeMap;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::trust::local_key::{same_tag, tag};

/// What an entry keeps besides the files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// The pipeline and stage that stored it (what `cache why` and the miss note look up).
    #[serde(default)]
    pub pipeline: String,
    pub stage: String,
    /// The key's parts, label → value.
    #[serde(default)]
    pub parts: BTreeMap<String, String>,
    pub outputs: Vec<CachedOutput>,
    pub summary: Option<String>,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub created_at: String,
    /// Hex HMAC-SHA256 over the rest, under the per-user key.
    #[serde(default)]
    pub tag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedOutput {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

impl Entry {
    fn tag_under(&self, key: &hmac::Key) -> hmac::Tag {
        let untagged = Entry {
            tag: String::new(),
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&untagged).unwrap_or_default();
        tag(key, &[b"sluice stage-cache entry/1", &bytes])
    }

    /// Tags the entry under `key`.
    pub(super) fn sign(&mut self, key: &hmac::Key) {
        self.tag = hex::encode(self.tag_under(key));
    }

    /// Whether the entry's tag verifies under `key`.
    pub(super) fn verifies(&self, key: &hmac::Key) -> bool {
        hex::decode(&self.tag).is_ok_and(|stored| same_tag(self.tag_under(key).as_ref(), &stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_foreign_entry_does_not_verify() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let mut entry = Entry {
            key: "k".into(),
            pipeline: "p".into(),
            stage: "s".into(),
            parts: BTreeMap::new(),
            outputs: vec![CachedOutput {
                name: "a".into(),
                media_type: "text/plain".into(),
                size: 1,
                sha256: "00".into(),
            }],
            summary: None,
            plugin_name: None,
            plugin_version: None,
            created_at: "now".into(),
            tag: String::new(),
        };
        assert!(!entry.verifies(&key), "untagged");
        entry.sign(&key);
        assert!(entry.verifies(&key));
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[2; 32]);
        assert!(!entry.verifies(&other));
        entry.outputs[0].sha256 = "11".into();
        assert!(!entry.verifies(&key), "edited");
    }
}
