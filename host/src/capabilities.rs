//! Which imports need which grant. The host links an interface only for stages granted it, and
//! refuses, before running, a plugin that imports something its stage was not granted.

use crate::grants::Grants;

/// A capability a plugin can import and a stage must be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Outbound HTTP (`wasi:http/*`), granted by `allow.net`.
    Http,
    /// Host programs (`sluice:pipeline/process`), granted by `allow.exec`.
    Exec,
    /// Secrets (`sluice:pipeline/secrets`), granted by `allow.secrets`.
    Secrets,
}

impl Capability {
    /// The capability an import needs, if any (plain WASI needs none: it is inert without
    /// mounts, environment or socket grants).
    pub fn needed_by(import: &str) -> Option<Self> {
        if import.starts_with("wasi:http/") {
            Some(Self::Http)
        } else if import.starts_with("sluice:pipeline/process") {
            Some(Self::Exec)
        } else if import.starts_with("sluice:pipeline/secrets") {
            Some(Self::Secrets)
        } else {
            None
        }
    }

    pub fn grant_key(self) -> &'static str {
        match self {
            Self::Http => "allow.net",
            Self::Exec => "allow.exec",
            Self::Secrets => "allow.secrets",
        }
    }
}

/// The set of capability interfaces linked for a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapSet {
    pub http: bool,
    pub exec: bool,
    pub secrets: bool,
}

impl CapSet {
    pub fn of(grants: &Grants) -> Self {
        Self {
            http: !grants.net.is_empty(),
            exec: !grants.exec.is_empty(),
            secrets: !grants.secrets.is_empty(),
        }
    }

    /// Everything linked (for `inspect`, which grants nothing at run time anyway).
    pub fn all() -> Self {
        Self {
            http: true,
            exec: true,
            secrets: true,
        }
    }

    pub fn has(self, capability: Capability) -> bool {
        match capability {
            Capability::Http => self.http,
            Capability::Exec => self.exec,
            Capability::Secrets => self.secrets,
        }
    }
}

/// One line per capability the stage imports but is not granted:
/// "imports wasi:http/outgoing-handler@0.2.4 but `allow.net` is empty (also: wasi:http/types@0.2.4)".
pub fn ungranted_imports<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    caps: CapSet,
) -> Vec<String> {
    let mut missing: Vec<(Capability, Vec<&str>)> = Vec::new();
    for import in imports {
        let Some(needed) = Capability::needed_by(import) else {
            continue;
        };
        if caps.has(needed) {
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
                capability.grant_key()
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
        let http_only = CapSet {
            http: true,
            ..CapSet::default()
        };
        assert_eq!(ungranted_imports(imports, http_only).len(), 1);
        assert!(ungranted_imports(imports, CapSet::all()).is_empty());
    }
}
