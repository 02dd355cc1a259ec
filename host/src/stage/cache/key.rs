//! What a stage-cache key is made of, part by part — the plugin's digest, each config key, each
//! grant, the limits and phase, each input's digest, each granted environment value (by digest),
//! each granted program, the output of its `cache_key` commands, the workspace and granted
//! folders as content trees (paths relative to them), and the git state of a workspace — kept in
//! the entry, so `sluice cache why` can say which parts moved between two entries without
//! running anything again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::grants::Access;
use crate::model::artifacts::ArtifactRecord;
use crate::model::digests::sha256_bytes;
use crate::model::tree::ContentTree;
use crate::stage::LockedStage;

/// Bumped when what goes into a key, or an entry's layout, changes.
pub(super) const FORMAT: &str = "sluice-stage-cache/3";

/// A key's parts: label → value (a digest where the value could be long or secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    pub parts: BTreeMap<String, String>,
    /// The folders' content trees by the label of their part (not part of the entry; stored
    /// by digest beside the entries, for `cache why` to name changed paths).
    #[serde(skip)]
    pub trees: BTreeMap<String, ContentTree>,
    /// Granted programs the stages make in the workspace (under `cache_ignore`) that are not
    /// there now: the stage runs to make them, whatever the cache holds.
    #[serde(skip)]
    pub missing: Vec<String>,
}

/// The key part of a granted program the stages make (under `cache_ignore`): what it is made
/// from is in the key already.
pub(super) const MADE_BY_THE_STAGES: &str = "made by the stages (cache_ignore)";

/// A folder the key needs the content tree of: the part's label and the host folder.
pub(super) struct Folder<'a> {
    pub label: String,
    pub path: &'a std::path::Path,
}

impl KeyParts {
    /// Every part that does not need a folder scanned; the folders to scan are returned.
    pub(super) fn of<'a>(
        stage: &'a LockedStage,
        inputs: &[&ArtifactRecord],
        program: impl Fn(&str) -> String,
    ) -> (Self, Vec<Folder<'a>>) {
        let mut parts = BTreeMap::new();
        let mut put = |label: String, value: String| {
            parts.insert(label, value);
        };
        put("format".into(), FORMAT.into());
        put("sluice".into(), env!("CARGO_PKG_VERSION").into());
        put("plugin".into(), stage.plugin_sha256.clone());
        match serde_json::from_str::<serde_json::Value>(&stage.config_json) {
            Ok(serde_json::Value::Object(config)) => {
                for (name, value) in config {
                    put(format!("config.{name}"), value.to_string());
                }
            }
            Ok(other) => put("config".into(), other.to_string()),
            Err(_) => put("config".into(), stage.config_json.clone()),
        }
        let grants = &stage.grants;
        put("grant workspace".into(), grants.workspace.label().into());
        for dir in &grants.dirs {
            // By where the stage sees it: the same grant on another machine is the same part.
            put(
                format!("grant dir {}", dir.guest),
                dir.access.label().into(),
            );
        }
        for (name, list) in [
            ("net", grants.net.iter().map(ToString::to_string).collect()),
            ("exec", grants.exec.clone()),
            ("exec env", grants.exec_env.clone()),
            ("env", grants.env.clone()),
            ("secrets", grants.secrets.clone()),
            (
                "caches",
                grants
                    .caches
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.env))
                    .collect(),
            ),
        ] {
            let list: Vec<String> = list;
            if !list.is_empty() {
                put(format!("grant {name}"), list.join(", "));
            }
        }
        if !stage.cache_ignore.is_empty() {
            put("cache ignore".into(), stage.cache_ignore.join(", "));
        }
        if !stage.makes.is_empty() {
            put("makes".into(), stage.makes.join(", "));
        }
        put("limits".into(), format!("{:?}", stage.limits));
        put("phase".into(), stage.phase.clone().unwrap_or_default());
        for input in inputs {
            put(format!("input {}", input.reference()), input.sha256.clone());
        }
        for name in &grants.env {
            // A digest: an environment value can be a token.
            let value = std::env::var(name).unwrap_or_default();
            put(format!("env {name}"), sha256_bytes(value.as_bytes()));
        }
        for name in &grants.exec {
            put(format!("program {name}"), program(name));
        }
        let mut folders = Vec::new();
        if grants.workspace != Access::None {
            folders.push(Folder {
                label: "workspace".into(),
                path: &stage.workspace,
            });
        }
        for dir in &grants.dirs {
            folders.push(Folder {
                label: format!("dir {}", dir.guest),
                path: &dir.host,
            });
        }
        (
            Self {
                parts,
                trees: BTreeMap::new(),
                missing: Vec::new(),
            },
            folders,
        )
    }

    /// Adds a folder's content tree as a part.
    pub(super) fn add_tree(&mut self, label: String, tree: ContentTree) {
        self.parts.insert(label.clone(), tree.digest());
        self.trees.insert(label, tree);
    }

    /// The key: a digest of every part with its label.
    pub fn key(&self) -> String {
        let mut hasher = Sha256::new();
        for (label, value) in &self.parts {
            for text in [label, value] {
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
        }
        hex::encode(hasher.finalize())
    }

    /// What changed from `earlier` to `self`, one line per part, with up to `max_paths` paths
    /// named for a folder whose trees are both at hand (`earlier_trees`).
    pub fn changes_since(
        &self,
        earlier: &KeyParts,
        earlier_trees: &BTreeMap<String, ContentTree>,
        max_paths: usize,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        for (label, value) in &self.parts {
            match earlier.parts.get(label) {
                None => lines.push(format!("{label}: new")),
                Some(before) if before == value => {}
                Some(before) => lines.push(self.changed_part(
                    label,
                    before,
                    value,
                    earlier_trees.get(label),
                    max_paths,
                )),
            }
        }
        for label in earlier.parts.keys() {
            if !self.parts.contains_key(label) {
                lines.push(format!("{label}: gone"));
            }
        }
        lines
    }

    fn changed_part(
        &self,
        label: &str,
        before: &str,
        now: &str,
        earlier_tree: Option<&ContentTree>,
        max_paths: usize,
    ) -> String {
        if let (Some(then), Some(tree)) = (earlier_tree, self.trees.get(label)) {
            let changes = tree.changes_since(then);
            let shown: Vec<String> = changes
                .iter()
                .take(max_paths)
                .map(|(path, change)| format!("{path} ({})", change.label()))
                .collect();
            let more = changes.len().saturating_sub(max_paths);
            return format!(
                "{label}: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        if label.starts_with("config.")
            || label.starts_with("grant")
            || label.starts_with("command ")
            || label == "phase"
        {
            format!("{label}: {before} → {now}")
        } else {
            format!("{label}: {:.12}… → {:.12}…", before, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tree::{EntryKind, TreeEntry};

    fn parts(pairs: &[(&str, &str)]) -> KeyParts {
        KeyParts {
            parts: pairs
                .iter()
                .map(|(l, v)| (l.to_string(), v.to_string()))
                .collect(),
            trees: BTreeMap::new(),
            missing: Vec::new(),
        }
    }

    #[test]
    fn the_changes_name_the_config_key_the_input_and_the_workspace_path() {
        let file = |sha: &str| TreeEntry {
            kind: EntryKind::File,
            executable: false,
            size: 1,
            sha256: sha.into(),
        };
        let mut then_tree = ContentTree::default();
        then_tree.entries.insert("src/a.rs".into(), file("1"));
        let mut now_tree = then_tree.clone();
        now_tree.entries.insert("src/a.rs".into(), file("2"));
        let mut earlier = parts(&[("config.level", "1"), ("input build/app", "aaaa")]);
        earlier.add_tree("workspace".into(), then_tree.clone());
        let mut now = parts(&[("config.level", "2"), ("input build/app", "bbbb")]);
        now.add_tree("workspace".into(), now_tree);
        assert_ne!(now.key(), earlier.key());
        let trees = BTreeMap::from([("workspace".to_string(), then_tree)]);
        let lines = now.changes_since(&earlier, &trees, 10);
        assert!(
            lines.contains(&"config.level: 1 → 2".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("input build/app: aaaa")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"workspace: src/a.rs (changed)".to_string()),
            "{lines:?}"
        );
        assert!(
            now.changes_since(&now.clone(), &BTreeMap::new(), 10)
                .is_empty()
        );
    }
}
