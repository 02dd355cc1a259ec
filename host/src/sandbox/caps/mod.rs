//! The capabilities a stage can be granted beyond plain WASI, one module each (see
//! [`crate::sandbox::capability::Capability`]), the set linked for a stage, and which imports
//! a stage's grants leave unmet.

pub mod exec;
pub mod http;
pub mod secrets;

use crate::config::grants::Grants;
use crate::sandbox::capability::Capability;

/// Every capability, in the order [`CapSet`] numbers them.
pub static CAPABILITIES: [&dyn Capability; 3] = [&http::Http, &exec::Exec, &secrets::Secrets];

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
