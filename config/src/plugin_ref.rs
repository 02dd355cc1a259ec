//! Registry plugin references as written in pipeline.toml (`oci://host/repo:tag@sha256:...`):
//! their syntax only. Talking to a registry is the host's business.

use std::fmt;

/// The scheme of a registry plugin reference in `pipeline.toml`.
pub const SCHEME: &str = "oci://";

/// Longest tag the OCI distribution spec allows.
const MAX_TAG_CHARS: usize = 128;

/// `oci://registry[:port]/repository[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a manifest digest itself.
    pub digest: Option<String>,
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl PluginRef {
    /// Parses a reference; `oci://` is optional (the CLI accepts both).
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.trim().strip_prefix(SCHEME).unwrap_or(text.trim());
        let (name, digest) = match body.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_string())),
            None => (body, None),
        };
        if let Some(digest) = &digest {
            check_digest(digest)?;
        }
        let (registry, rest) = name.split_once('/').ok_or(
            "a reference names a registry and a repository, e.g. oci://127.0.0.1:5000/acme/checkout:1.2.0",
        )?;
        // A host name or address, never a path step: it also names a folder in the store.
        if registry.is_empty()
            || registry.contains("..")
            || !registry.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[')
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("`{registry}` is not a registry host[:port]"));
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (rest, None),
        };
        check_repository(repository)?;
        if let Some(tag) = &tag {
            check_tag(tag)?;
        }
        if tag.is_none() && digest.is_none() {
            return Err(
                "the reference has no version: add a tag (`:1.2.0`) or a digest (`@sha256:...`)"
                    .to_string(),
            );
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name a signature's subject carries.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// OCI's grammar: components of lower-case letters and digits, joined by `.`, `_` or `-` —
/// so never empty, `.` or `..` (a repository also names folders in the plugin store).
fn check_repository(repository: &str) -> Result<(), String> {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            part.starts_with(alphanumeric)
                && part.ends_with(alphanumeric)
                && !part.contains("..")
                && part
                    .chars()
                    .all(|c| alphanumeric(c) || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{repository}` is not a repository name (lower-case letters, digits, `.`, `_`, `-`, separated by `/`)"
        ))
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > MAX_TAG_CHARS {
        return Err(format!(
            "the tag is {} characters long; tags have 1 to {MAX_TAG_CHARS}",
            tag.len()
        ));
    }
    // OCI's grammar: a word character first, so never `.` or `..`.
    if tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a tag (letters, digits, `.`, `_`, `-`)"
        ))
    }
}

/// `sha256:` and 64 hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => Ok(()),
        _ => Err(format!(
            "`{digest}` is not a digest; write `sha256:` and 64 hex digits"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_and_displays_tags_and_digests() -> Result<(), String> {
        let r = PluginRef::parse("oci://127.0.0.1:5000/acme/checkout:1.2.0")?;
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/checkout");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.name(), "127.0.0.1:5000/acme/checkout");
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/acme/checkout:1.2.0");
        let pinned = PluginRef::parse(&format!("localhost/a@{DIGEST}"))?;
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.as_deref(), Some(DIGEST));
        assert_eq!(pinned.to_string(), format!("oci://localhost/a@{DIGEST}"));
        Ok(())
    }

    #[test]
    fn refuses_what_a_registry_would() {
        for (bad, why) in [
            ("oci://r/a", "no version"),
            ("oci://r/A:1", "not a repository name"),
            ("oci://r/acme/../evil:1", "not a repository name"),
            ("oci://r/acme//evil:1", "not a repository name"),
            ("oci://r/./evil:1", "not a repository name"),
            ("oci://r/acme/.hidden:1", "not a repository name"),
            ("oci://r/acme/x:..", "is not a tag"),
            ("oci://../acme/x:1", "not a registry host"),
            ("oci://.r/acme/x:1", "not a registry host"),
            ("oci://r/a@sha256:12", "not a digest"),
            ("oci://r", "names a registry and a repository"),
            ("oci://r/a:1 2", "not a tag"),
            ("oci://r o/a:1", "not a registry"),
        ] {
            let err = PluginRef::parse(bad).err().unwrap_or_default();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
