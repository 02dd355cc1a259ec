//! Capabilities beyond plain WASI, one module each under [`super::caps`]: which imports need
//! it, which grant turns it on, how it links, and what per-stage state it builds from the grants.
//! The host links a capability only for stages granted it, and refuses, before running, a
//! plugin that imports something its stage was not granted. A new capability is one new module
//! plus one line in [`CAPABILITIES`].

use std::any::{Any, TypeId};
use std::collections::HashMap;

use anyhow::Result;
use wasmtime::component::Linker;

use crate::config::grants::Grants;
use crate::sandbox::caps;
use crate::sandbox::capture::StageLog;
use crate::sandbox::net::Denials;
use crate::sandbox::process::Mount;
use crate::sandbox::state::{SandboxSpec, StageState};

/// A capability a plugin can import and a stage must be granted.
pub trait Capability: Send + Sync {
    /// The `[stage.allow]` key that grants it, e.g. `allow.net`.
    fn grant_key(&self) -> &'static str;
    /// Whether importing `import` (e.g. `wasi:http/types@0.2.6`) needs this capability.
    fn needed_by(&self, import: &str) -> bool;
    /// Whether a stage's grants turn it on.
    fn granted(&self, grants: &Grants) -> bool;
    /// Adds its host functions to a linker (only linkers for stages granted it).
    fn link(&self, linker: &mut Linker<StageState>) -> Result<()>;
    /// Builds its per-stage state from the grants, for a stage granted it.
    fn prepare(&self, setup: &mut StageSetup<'_>) -> Result<()> {
        let _ = setup;
        Ok(())
    }
}

/// Every capability, in the order [`CapSet`] numbers them.
pub static CAPABILITIES: [&dyn Capability; 3] = [
    &caps::http::Http,
    &caps::exec::Exec,
    &caps::secrets::Secrets,
];

/// What a capability's `prepare` may read, and where it puts its state.
pub struct StageSetup<'a> {
    pub spec: &'a SandboxSpec<'a>,
    pub log: &'a StageLog,
    pub denials: &'a Denials,
    /// The stage's folders, host and guest side.
    pub mounts: &'a [Mount],
    pub state: &'a mut CapabilityState,
}

/// Per-stage state of the granted capabilities, one value per type.
#[derive(Default)]
pub struct CapabilityState(HashMap<TypeId, Box<dyn Any + Send>>);

impl CapabilityState {
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.0.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }
}

/// The set of capabilities linked for a stage: bit `i` is `CAPABILITIES[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapSet(u32);

impl CapSet {
    /// What `grants` turn on.
    pub fn of(grants: &Grants) -> Self {
        Self::matching(|capability| capability.granted(grants))
    }

    /// Everything linked (for `inspect`, which grants nothing at run time anyway).
    pub fn all() -> Self {
        Self::matching(|_| true)
    }

    fn matching(keep: impl Fn(&dyn Capability) -> bool) -> Self {
        let mut bits = 0;
        for (index, capability) in CAPABILITIES.iter().enumerate() {
            if keep(*capability) {
                bits |= 1 << index;
            }
        }
        Self(bits)
    }

    /// The capabilities in the set.
    pub fn iter(self) -> impl Iterator<Item = &'static dyn Capability> {
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(move |(index, _)| self.0 & (1 << index) != 0)
            .map(|(_, capability)| *capability)
    }

    /// With the capability `CAPABILITIES[index]` added.
    #[cfg(test)]
    pub fn with(self, index: usize) -> Self {
        Self(self.0 | (1 << index))
    }
}

/// The capability an import needs and its index, if any (plain WASI needs none: it is inert
/// without mounts, environment or socket grants).
fn needed_by(import: &str) -> Option<usize> {
    CAPABILITIES.iter().position(|c| c.needed_by(import))
}

/// One line per capability the stage imports but is not granted:
/// "imports wasi:http/outgoing-handler@0.2.4 but `allow.net` is empty (also: wasi:http/types@0.2.4)".
pub fn ungranted_imports<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    caps: CapSet,
) -> Vec<String> {
    let mut missing: Vec<(usize, Vec<&str>)> = Vec::new();
    for import in imports {
        let Some(needed) = needed_by(import) else {
            continue;
        };
        if caps.0 & (1 << needed) != 0 {
            continue;
        }
        match missing.iter_mut().find(|(c, _)| *c == needed) {
            Some((_, names)) => names.push(import),
            None => missing.push((needed, vec![import])),
        }
    }
    missing
        .into_iter()
        .map(|(capability, mut names)| {
            // Name the entry point (the handler), not the type interface, first.
            names.sort_by_key(|n| !n.contains("outgoing-handler"));
            let mut line = format!(
                "imports {} but `{}` is empty",
                names[0],
                CAPABILITIES[capability].grant_key()
            );
            if names.len() > 1 {
                line.push_str(&format!(" (also: {})", names[1..].join(", ")));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_imports_to_grants() {
        let imports = [
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:http/types@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "sluice:pipeline/process@0.1.0",
            "sluice:pipeline/log@0.1.0",
        ];
        let none = ungranted_imports(imports, CapSet::default());
        assert_eq!(none.len(), 2);
        assert_eq!(
            none[0],
            "imports wasi:http/outgoing-handler@0.2.6 but `allow.net` is empty \
             (also: wasi:http/types@0.2.6)"
        );
        assert!(none[1].contains("`allow.exec`"));
        let http_only = CapSet::default().with(0);
        assert_eq!(ungranted_imports(imports, http_only).len(), 1);
        assert!(ungranted_imports(imports, CapSet::all()).is_empty());
    }
}
