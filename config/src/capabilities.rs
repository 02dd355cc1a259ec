//! A component's capability set — what it imports and exports — and how two of them differ:
//! pipeline.lock records one per plugin, and an update that asks for more (a new import, another
//! world) is refused until accepted by name. Kept apart from the lock file's reading and writing.

use std::collections::BTreeSet;

use serde::Serialize;

/// A component's capability set: the reviewer's view of what the code could ask for. Grants
/// still decide what a stage gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Its world: the names it exports (a sluice stage exports the functions `describe` and
    /// `run`), sorted.
    pub exports: Vec<String>,
    /// The interfaces it imports, as the component names them (`wasi:http/outgoing-handler@0.2.6`),
    /// sorted.
    pub imports: Vec<String>,
}

impl Capabilities {
    /// Sorted and without repeats, whatever order the component listed them in.
    pub fn new(mut exports: Vec<String>, mut imports: Vec<String>) -> Self {
        exports.sort();
        exports.dedup();
        imports.sort();
        imports.dedup();
        Self { exports, imports }
    }

    /// What changed from `self` (recorded) to `now`.
    pub fn diff(&self, now: &Capabilities) -> CapsDiff {
        let before: BTreeSet<String> = self.imports.iter().map(|i| interface(i)).collect();
        let after: BTreeSet<String> = now.imports.iter().map(|i| interface(i)).collect();
        CapsDiff {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            world: (self.exports != now.exports)
                .then(|| (self.exports.clone(), now.exports.clone())),
        }
    }
}

/// An import's interface without its patch version (`wasi:http/types@0.2.6` →
/// `wasi:http/types@0.2.x`): a rebuild against a newer patch release of WASI asks for nothing new.
pub fn interface(import: &str) -> String {
    let Some((name, version)) = import.rsplit_once('@') else {
        return import.to_string();
    };
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        [major, minor, patch]
            if [major, minor].iter().all(|p| p.parse::<u64>().is_ok())
                && patch.chars().next().is_some_and(|c| c.is_ascii_digit()) =>
        {
            format!("{name}@{major}.{minor}.x")
        }
        _ => import.to_string(),
    }
}

/// How a plugin's capability set changed: interfaces it now imports, ones it no longer imports,
/// and its world (exports) before and after when that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapsDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub world: Option<(Vec<String>, Vec<String>)>,
}

impl CapsDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.world.is_none()
    }

    /// It asks for more than before: a new import, or another world. Refused until accepted.
    pub fn widens(&self) -> bool {
        !self.added.is_empty() || self.world.is_some()
    }

    /// `now imports A and B; no longer imports C; now exports X (was Y)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("now imports {}", and_list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("no longer imports {}", and_list(&self.removed)));
        }
        if let Some((before, after)) = &self.world {
            parts.push(format!(
                "now exports {} (was {})",
                list_or_nothing(after),
                list_or_nothing(before)
            ));
        }
        if parts.is_empty() {
            "asks for the same capabilities".to_string()
        } else {
            parts.join("; ")
        }
    }
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(exports: &[&str], imports: &[&str]) -> Capabilities {
        Capabilities::new(
            exports.iter().map(|s| s.to_string()).collect(),
            imports.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn a_diff_tells_widening_from_narrowing() {
        let v1 = caps(
            &["describe", "run"],
            &["sluice:pipeline/log@0.1.0", "wasi:filesystem/types@0.2.6"],
        );
        // The same set, in another order and another WASI patch release: nothing changed.
        let same = caps(
            &["run", "describe"],
            &["wasi:filesystem/types@0.2.9", "sluice:pipeline/log@0.1.0"],
        );
        let diff = v1.diff(&same);
        assert!(diff.is_empty() && !diff.widens(), "{diff:?}");

        let wider = caps(
            &["describe", "run"],
            &[
                "sluice:pipeline/log@0.1.0",
                "sluice:pipeline/process@0.1.0",
                "wasi:filesystem/types@0.2.6",
                "wasi:http/outgoing-handler@0.2.6",
            ],
        );
        let diff = v1.diff(&wider);
        assert!(diff.widens());
        assert_eq!(
            diff.describe(),
            "now imports sluice:pipeline/process@0.1.x and wasi:http/outgoing-handler@0.2.x"
        );

        let narrower = caps(&["describe", "run"], &["sluice:pipeline/log@0.1.0"]);
        let diff = v1.diff(&narrower);
        assert!(!diff.is_empty() && !diff.widens(), "{diff:?}");
        assert_eq!(
            diff.describe(),
            "no longer imports wasi:filesystem/types@0.2.x"
        );
        // Back again is a widening: what was dropped must be accepted to come back.
        assert!(narrower.diff(&v1).widens());

        // One import traded for another still widens.
        let traded = caps(
            &["describe", "run"],
            &["sluice:pipeline/log@0.1.0", "sluice:pipeline/secrets@0.1.0"],
        );
        let diff = v1.diff(&traded);
        assert!(diff.widens());
        assert_eq!(
            diff.describe(),
            "now imports sluice:pipeline/secrets@0.1.x; no longer imports wasi:filesystem/types@0.2.x"
        );

        // Another world, the same imports: a widening too.
        let other_world = caps(
            &["run", "wasi:http/incoming-handler@0.2.6"],
            &v1.imports.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let diff = v1.diff(&other_world);
        assert!(diff.widens());
        assert!(diff.added.is_empty() && diff.removed.is_empty());
        assert_eq!(
            diff.describe(),
            "now exports run, wasi:http/incoming-handler@0.2.6 (was describe, run)"
        );
    }

    #[test]
    fn interfaces_drop_only_a_numeric_patch_version() {
        assert_eq!(interface("wasi:http/types@0.2.6"), "wasi:http/types@0.2.x");
        assert_eq!(
            interface("wasi:http/types@0.3.0-rc-2025"),
            "wasi:http/types@0.3.x"
        );
        assert_eq!(interface("log"), "log");
        assert_eq!(interface("a:b/c@1.0"), "a:b/c@1.0");
    }
}
