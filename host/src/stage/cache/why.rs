//! Why a stage missed: what moved in its key since the newest entry stored for it, and between
//! the two newest entries of a stage (`sluice cache why`) — with the paths that changed in its
//! folders, from the content trees kept beside the entries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::model::digests::sha256_bytes;
use crate::model::text::{MAX_FIELD_BYTES, one_line};
use crate::model::tree::ContentTree;

use super::{CHANGED_PATHS_SHOWN, Entry, KeyParts, LockedStage, StageCache};

impl StageCache {
    /// Why `stage` missed with `parts`: what moved since the newest entry stored for it (empty
    /// when none was, or it cannot be read).
    pub fn why_missed(&self, stage: &LockedStage, parts: &KeyParts) -> Vec<String> {
        let Some(latest) = self.latest_file(&stage.pipeline, &stage.name) else {
            return Vec::new();
        };
        let Some(entry) = std::fs::read_to_string(latest)
            .ok()
            .and_then(|key| self.lookup_entry(key.trim()))
        else {
            return Vec::new();
        };
        let earlier = KeyParts {
            parts: entry.parts.clone(),
            trees: BTreeMap::new(),
            missing: Vec::new(),
        };
        // Paths come from the workspace, which a stage may have written: made safe to print.
        parts
            .changes_since(&earlier, &self.trees_of(&entry), CHANGED_PATHS_SHOWN)
            .iter()
            .map(|line| one_line(line, MAX_FIELD_BYTES))
            .collect()
    }

    /// What moved between the two newest entries of stage `stage` (of any pipeline, or of
    /// `pipeline`): the later entry's key and the lines; `None` without two entries.
    pub fn why_between_newest(
        &self,
        stage: &str,
        pipeline: Option<&str>,
    ) -> Option<(Entry, Entry, Vec<String>)> {
        let mut mine = self
            .list()
            .into_iter()
            .map(|(entry, _)| entry)
            .filter(|e| e.stage == stage && pipeline.is_none_or(|p| e.pipeline == p));
        let (newer, older) = (mine.next()?, mine.next()?);
        let mut now = KeyParts {
            parts: newer.parts.clone(),
            trees: BTreeMap::new(),
            missing: Vec::new(),
        };
        for (label, tree) in self.trees_of(&newer) {
            now.trees.insert(label, tree);
        }
        let earlier = KeyParts {
            parts: older.parts.clone(),
            trees: BTreeMap::new(),
            missing: Vec::new(),
        };
        let lines = now.changes_since(&earlier, &self.trees_of(&older), CHANGED_PATHS_SHOWN);
        Some((newer, older, lines))
    }

    /// The content trees an entry's parts name, as far as they were kept.
    fn trees_of(&self, entry: &Entry) -> BTreeMap<String, ContentTree> {
        let Some(root) = &self.root else {
            return BTreeMap::new();
        };
        entry
            .parts
            .iter()
            .filter(|(label, _)| *label == "workspace" || label.starts_with("dir "))
            .filter_map(|(label, digest)| {
                let valid = digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
                let file = root.join("trees").join(format!("{digest}.json"));
                let tree: ContentTree = valid
                    .then(|| std::fs::read(file).ok())
                    .flatten()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())?;
                (tree.digest() == *digest).then(|| (label.clone(), tree))
            })
            .collect()
    }

    /// Where the key of the newest entry of a pipeline's stage is noted.
    pub(super) fn latest_file(&self, pipeline: &str, stage: &str) -> Option<PathBuf> {
        let name = sha256_bytes(format!("{pipeline}\0{stage}").as_bytes());
        Some(self.root.as_ref()?.join("latest").join(&name[..32]))
    }
}
