//! What a stage may touch (`[stage.allow]`) and where secrets come from (`[secrets]`), as
//! validated. Deny by default: an absent key grants nothing. Parsing lives in
//! `pipeline::allow` and `pipeline::secrets`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Read or read-write access to a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    None,
    Read,
    Write,
}

impl Access {
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// A host folder mounted into the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// Resolved against the pipeline file's folder.
    pub host: PathBuf,
    /// An absolute guest path, e.g. `/dist`.
    pub guest: String,
    pub access: Access,
    /// Skipped, rather than an error, when the host folder does not exist.
    pub optional: bool,
    /// Where `host` is written, to report a host path that is not a folder (not sent to
    /// another machine: reports there need no place in this file).
    #[serde(skip)]
    pub site: crate::diagnostic::Site,
}

/// One `host:port` a stage may connect to (HTTP or TCP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetGrant {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for NetGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A cache volume: a named, persistent, writable folder kept on this machine between runs (the
/// build tool's incremental state), mounted at `/sluice/cache/<name>`; the programs the stage runs find
/// its host path in the variable `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheGrant {
    pub name: String,
    pub env: String,
}

/// Where a stage sees cache volume `name`.
pub fn cache_guest_path(name: &str) -> String {
    format!("/sluice/cache/{name}")
}

/// Everything one stage is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub workspace: Access,
    pub dirs: Vec<DirGrant>,
    pub env: Vec<String>,
    pub net: Vec<NetGrant>,
    pub exec: Vec<String>,
    /// Environment variables the plugin may set on the programs it runs (`allow.exec_env`);
    /// never a loader or interpreter hook (see [`crate::names::is_program_hook`]).
    pub exec_env: Vec<String>,
    /// Those of `exec_env` off sluice's safe list, granted with `allow.exec_env_unchecked`:
    /// shown apart by `sluice check`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_env_unchecked: Vec<String>,
    pub secrets: Vec<String>,
    /// Cache volumes (`allow.caches`), in name order.
    #[serde(default)]
    pub caches: Vec<CacheGrant>,
}

impl Grants {
    /// Nothing at all: the default.
    pub fn none() -> Self {
        Self {
            workspace: Access::None,
            dirs: Vec::new(),
            env: Vec::new(),
            net: Vec::new(),
            exec: Vec::new(),
            exec_env: Vec::new(),
            exec_env_unchecked: Vec::new(),
            secrets: Vec::new(),
            caches: Vec::new(),
        }
    }

    /// One line per granted capability, for `sluice check`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.workspace != Access::None {
            lines.push(format!(
                "workspace: {} at /workspace",
                self.workspace.label()
            ));
        }
        for dir in &self.dirs {
            lines.push(format!(
                "dir: {} at {} ({})",
                dir.host.display(),
                dir.guest,
                dir.access.label()
            ));
        }
        let mut list = |name: &str, items: Vec<String>| {
            if !items.is_empty() {
                lines.push(format!("{name}: {}", items.join(", ")));
            }
        };
        list("env", self.env.clone());
        list("net", self.net.iter().map(ToString::to_string).collect());
        list("exec", self.exec.clone());
        list(
            "exec env",
            self.exec_env
                .iter()
                .filter(|n| !self.exec_env_unchecked.contains(n))
                .cloned()
                .collect(),
        );
        list(
            "exec env, UNCHECKED (the plugin chooses these values; sluice does not know them safe)",
            self.exec_env_unchecked.clone(),
        );
        list("secrets", self.secrets.clone());
        list(
            "caches",
            self.caches
                .iter()
                .map(|c| format!("{} at {} (${})", c.name, cache_guest_path(&c.name), c.env))
                .collect(),
        );
        lines
    }
}

/// A declared secret's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretSource {
    /// A host environment variable.
    Env(String),
    /// A file whose content (without a trailing newline) is the value.
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_only_what_is_granted() {
        assert!(Grants::none().describe().is_empty());
        let grants = Grants {
            workspace: Access::Read,
            net: vec![NetGrant {
                host: "example.com".into(),
                port: 443,
            }],
            exec: vec!["cargo".into(), "git".into()],
            ..Grants::none()
        };
        assert_eq!(
            grants.describe(),
            [
                "workspace: read at /workspace",
                "net: example.com:443",
                "exec: cargo, git"
            ]
        );
    }
}
