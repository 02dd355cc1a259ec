//! What a stage may touch (`[stage.allow]`) and how much it may use (`[limits]`), as written in
//! pipeline.toml and as validated. Deny by default: an absent key grants nothing.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::Diagnostic;

/// Pins a diagnostic to a span of the manifest being parsed.
pub(crate) type At<'a> = &'a dyn Fn(Range<usize>, String) -> Diagnostic;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    #[serde(default)]
    workspace: Option<Spanned<String>>,
    #[serde(default)]
    dirs: Vec<RawDir>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    #[serde(default)]
    net: Vec<Spanned<String>>,
    #[serde(default)]
    exec: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    host: Spanned<String>,
    guest: Spanned<String>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    /// Mount only if the host folder exists (e.g. a `.git` that a copy may lack).
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    memory: Option<Spanned<String>>,
    #[serde(default)]
    log: Option<Spanned<String>>,
    #[serde(default)]
    outputs: Option<Spanned<i64>>,
    #[serde(default)]
    output_size: Option<Spanned<String>>,
}

/// Read or read-write access to a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Resolved against the pipeline file's folder.
    pub host: PathBuf,
    /// An absolute guest path, e.g. `/dist`.
    pub guest: String,
    pub access: Access,
    /// Skipped, rather than an error, when the host folder does not exist.
    pub optional: bool,
}

/// One `host:port` a stage may connect to (HTTP or TCP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetGrant {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for NetGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Everything one stage is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub workspace: Access,
    pub dirs: Vec<DirGrant>,
    pub env: Vec<String>,
    pub net: Vec<NetGrant>,
    pub exec: Vec<String>,
    pub secrets: Vec<String>,
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
            secrets: Vec::new(),
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
        let list = |name: &str, items: Vec<String>, lines: &mut Vec<String>| {
            if !items.is_empty() {
                lines.push(format!("{name}: {}", items.join(", ")));
            }
        };
        list("env", self.env.clone(), &mut lines);
        list(
            "net",
            self.net.iter().map(ToString::to_string).collect(),
            &mut lines,
        );
        list("exec", self.exec.clone(), &mut lines);
        list("secrets", self.secrets.clone(), &mut lines);
        lines
    }
}

/// How much a stage may use before the host stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    /// Linear memory, in bytes, summed over the component's memories.
    pub memory: u64,
    /// Bytes of log (stdout, stderr and `log` lines).
    pub log: u64,
    /// Number of declared outputs.
    pub outputs: u64,
    /// Total bytes of declared outputs.
    pub output_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30 * 60),
            memory: 1 << 30,
            log: 16 << 20,
            outputs: 10_000,
            output_size: 4 << 30,
        }
    }
}

/// Formats a byte count the way limits are written: `512 MiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

impl RawLimits {
    /// These limits on top of `base`.
    pub(crate) fn resolve(&self, base: Limits, at: At<'_>) -> Result<Limits, Diagnostic> {
        let mut limits = base;
        if let Some(text) = &self.timeout {
            limits.timeout = parse_duration(text, at)?;
        }
        if let Some(text) = &self.memory {
            limits.memory = parse_size(text, at)?;
        }
        if let Some(text) = &self.log {
            limits.log = parse_size(text, at)?;
        }
        if let Some(count) = &self.outputs {
            limits.outputs = u64::try_from(*count.get_ref()).map_err(|_| {
                at(count.span(), "`outputs` must not be negative".into())
                    .with_hint("give the largest number of outputs the stage may declare")
            })?;
        }
        if let Some(text) = &self.output_size {
            limits.output_size = parse_size(text, at)?;
        }
        Ok(limits)
    }
}

fn parse_duration(text: &Spanned<String>, at: At<'_>) -> Result<Duration, Diagnostic> {
    match humantime::parse_duration(text.get_ref()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(at(
            text.span(),
            "a timeout of zero would stop every stage".into(),
        )
        .with_hint("use a positive duration such as \"90s\" or \"10m\"")),
        Err(err) => Err(at(
            text.span(),
            format!("invalid duration `{}`: {err}", text.get_ref()),
        )
        .with_hint("write durations like \"90s\", \"10m\" or \"1h 30m\"")),
    }
}

fn parse_size(text: &Spanned<String>, at: At<'_>) -> Result<u64, Diagnostic> {
    match text.get_ref().trim().parse::<bytesize::ByteSize>() {
        Ok(size) if size.as_u64() > 0 => Ok(size.as_u64()),
        _ => Err(
            at(text.span(), format!("invalid size `{}`", text.get_ref()))
                .with_hint("write sizes like \"512 MiB\", \"2 GiB\" or \"64 KiB\""),
        ),
    }
}

impl RawAllow {
    /// Validates the grants; `secrets` are the names declared in the `[secrets]` table.
    pub(crate) fn resolve(
        &self,
        pipeline_dir: &Path,
        declared_secrets: &BTreeSet<String>,
        at: At<'_>,
    ) -> Result<Grants, Diagnostic> {
        let mut grants = Grants::none();
        if let Some(mode) = &self.workspace {
            grants.workspace = parse_access(mode, at)?;
        }
        let mut guests: BTreeSet<String> = ["/in", "/out", "/workspace"]
            .into_iter()
            .map(String::from)
            .collect();
        for dir in &self.dirs {
            let guest = dir.guest.get_ref().trim_end_matches('/').to_string();
            let valid = guest.starts_with('/')
                && guest.len() > 1
                && guest[1..]
                    .split('/')
                    .all(|p| !p.is_empty() && p != "." && p != "..");
            if !valid {
                return Err(
                    at(dir.guest.span(), format!("invalid guest path `{guest}`"))
                        .with_hint("guest paths are absolute and plain, e.g. \"/dist\""),
                );
            }
            if !guests.insert(guest.clone()) {
                return Err(at(
                    dir.guest.span(),
                    format!("guest path `{guest}` is already used"),
                )
                .with_hint("/in, /out and /workspace are reserved; give each dir its own path"));
            }
            let host = dir.host.get_ref();
            if host.trim().is_empty() {
                return Err(at(dir.host.span(), "the host path is empty".into())
                    .with_hint("name a folder, relative to the pipeline file"));
            }
            let access = match &dir.mode {
                Some(mode) => parse_access(mode, at)?,
                None => Access::Read,
            };
            if access == Access::None {
                return Err(at(
                    dir.mode.as_ref().map_or(dir.host.span(), Spanned::span),
                    "a dir grant with mode \"none\" grants nothing".into(),
                )
                .with_hint("use \"read\" or \"write\", or remove the entry"));
            }
            grants.dirs.push(DirGrant {
                host: pipeline_dir.join(host),
                guest,
                access,
                optional: dir.optional,
            });
        }
        for name in &self.env {
            let valid = !name.get_ref().is_empty()
                && name
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(at(
                    name.span(),
                    format!("invalid variable name `{}`", name.get_ref()),
                )
                .with_hint("list environment variable names, e.g. \"RUST_LOG\""));
            }
            grants.env.push(name.get_ref().clone());
        }
        for entry in &self.net {
            grants.net.push(parse_net(entry, at)?);
        }
        for program in &self.exec {
            let text = program.get_ref();
            if text.trim().is_empty() || text.contains(char::is_whitespace) {
                return Err(at(program.span(), format!("invalid program `{text}`"))
                    .with_hint("list program names (\"cargo\") or absolute paths; arguments are chosen by the plugin"));
            }
            grants.exec.push(text.clone());
        }
        for secret in &self.secrets {
            if !declared_secrets.contains(secret.get_ref()) {
                let hint = if declared_secrets.is_empty() {
                    format!(
                        "declare it in a [secrets] table, e.g. {} = {{ env = \"{}\" }}",
                        secret.get_ref(),
                        secret.get_ref()
                    )
                } else {
                    format!(
                        "declared secrets are: {}",
                        declared_secrets
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(at(
                    secret.span(),
                    format!("secret `{}` is not declared", secret.get_ref()),
                )
                .with_hint(hint));
            }
            grants.secrets.push(secret.get_ref().clone());
        }
        Ok(grants)
    }
}

fn parse_access(mode: &Spanned<String>, at: At<'_>) -> Result<Access, Diagnostic> {
    match mode.get_ref().as_str() {
        "none" => Ok(Access::None),
        "read" => Ok(Access::Read),
        "write" => Ok(Access::Write),
        other => Err(at(mode.span(), format!("invalid access mode `{other}`"))
            .with_hint("use \"none\", \"read\" or \"write\"")),
    }
}

fn parse_net(entry: &Spanned<String>, at: At<'_>) -> Result<NetGrant, Diagnostic> {
    let text = entry.get_ref();
    let bad = |why: &str| {
        at(
            entry.span(),
            format!("invalid network grant `{text}`: {why}"),
        )
        .with_hint("write `host:port`, e.g. \"127.0.0.1:8080\" or \"registry.example.com:443\"")
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no `:port`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(bad("the host is empty or not a host name"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("port 0 is not a real port"));
    }
    Ok(NetGrant {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Where a secret's value comes from (`[secrets]` table).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

/// A declared secret's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host environment variable.
    Env(String),
    /// A file whose content (without a trailing newline) is the value.
    File(PathBuf),
}

impl RawSecret {
    pub(crate) fn resolve(
        &self,
        name: &Spanned<String>,
        pipeline_dir: &Path,
        at: At<'_>,
    ) -> Result<SecretSource, Diagnostic> {
        match (&self.env, &self.file) {
            (Some(var), None) => Ok(SecretSource::Env(var.clone())),
            (None, Some(file)) => Ok(SecretSource::File(pipeline_dir.join(file))),
            _ => Err(at(
                name.span(),
                format!(
                    "secret `{}` needs exactly one of `env` or `file`",
                    name.get_ref()
                ),
            )
            .with_hint(
                "e.g. DEPLOY_TOKEN = { env = \"DEPLOY_TOKEN\" } or { file = \"secrets/token\" }",
            )),
        }
    }
}
