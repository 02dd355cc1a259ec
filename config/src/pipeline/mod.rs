//! `pipeline.toml`: the versioned file format, its parsing, and the checks that make a user's
//! mistake an error with a file, a line, a column and a fix — never a panic. Parsing reads
//! nothing but the pipeline file itself; key files, plugins and secrets are the host's to open.

mod allow;
mod graph;
mod hints;
mod inputs;
mod limits;
pub mod matrix;
pub mod quarantine;
pub(crate) mod raw;
mod secrets;
mod stage;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Site};
use crate::grants::{Grants, SecretSource};
use crate::limits::Limits;
use crate::names;
use crate::plugin_ref::PluginRef;
use crate::source::{self, Source, Unique};
use raw::{RawManifest, Text};

/// The only `version` this build of sluice reads.
pub const MANIFEST_VERSION: u32 = 1;

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The manifest file as the user named it.
    pub file: PathBuf,
    /// The sha256 (hex) of the exact text parsed: what a run records and a resume compares.
    pub sha256: String,
    /// The directory relative paths in the manifest are resolved against.
    pub dir: PathBuf,
    /// The project checkout (`[pipeline] workspace`, default: `dir`).
    pub workspace: PathBuf,
    /// Declared secrets and where their values come from.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Where each secret's source is written in the file.
    pub secret_sites: BTreeMap<String, Site>,
    pub stages: Vec<StageSpec>,
    /// The secret whose value signs release provenance, if any.
    pub provenance_key: Option<String>,
    /// When a stage does not succeed, stages running beside it are cancelled (default true).
    pub fail_fast: bool,
}

/// One `[[stage]]` entry.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    /// Where the stage's `name` is written, to report problems found later at the stage.
    pub site: Site,
    pub description: Option<String>,
    /// The plugin reference exactly as written (trimmed).
    pub plugin_ref: String,
    /// Where the plugin comes from.
    pub plugin: PluginSource,
    /// Where `plugin` is written, to report a missing file or a failed download there.
    pub plugin_site: Site,
    /// Key files one of which must have signed this stage's registry plugin (empty: none
    /// required). The stage's own `trusted_keys` replace the pipeline's.
    pub trusted_keys: Vec<KeyFile>,
    pub inputs: InputSelection,
    /// The `[stage.config]` table as a JSON object.
    pub config_json: String,
    /// What it may touch.
    pub grants: Grants,
    /// How much it may use.
    pub limits: Limits,
    /// Whether a person must approve it first (a delivery gate).
    pub manual_approval: bool,
    pub when: When,
    /// The phase the pipeline file gives the stage (`phase = "release"`). Provenance takes its
    /// subjects and source commit from these, never from what a plugin says it is.
    pub phase: Option<String>,
    /// Stages named in `needs`.
    pub needs: Vec<String>,
    /// Every stage this one waits for: those its `inputs` read from and its `needs`, or, with
    /// neither, every stage above it.
    pub depends_on: Vec<String>,
    /// How many more attempts a stage that fails, crashes or errors gets (0 to 10).
    pub retries: u32,
    /// The stage as written, for a matrix instance (`build` for `build-x86_64`); else its name.
    pub group: String,
    /// A matrix instance's values by key; empty for a plain stage.
    pub matrix: BTreeMap<String, String>,
    /// Whether the run goes on, and still succeeds, when this stage does not.
    pub allow_failure: bool,
    /// `cache = true | false` as written; unset, the stage cache decides from the grants.
    pub cache: Option<bool>,
    /// Commands (program and arguments, no shell) whose output joins the stage-cache key; each
    /// program is one the stage may run (`allow.exec`).
    pub cache_key: Vec<Vec<String>>,
    /// `.gitignore`-style patterns of paths the stage-cache key leaves out of the workspace and
    /// granted folders (each checked to be a valid glob).
    pub cache_ignore: Vec<String>,
    /// Paths in the workspace the stage makes for later stages (plain relative paths): left out
    /// of its stage-cache key, and the cache serves it only while they are there.
    pub makes: Vec<String>,
    /// Labels an agent needs to run this stage when the run is distributed (`--nats`); a run
    /// on one machine ignores them.
    pub runs_on: Vec<String>,
    /// Known-flaky tests that may fail without failing the stage, each until a date.
    pub quarantine: Vec<quarantine::Quarantine>,
}

/// At most this many stages in a pipeline, counting each matrix instance. Each stage may wait
/// for every stage above it, so what a pipeline holds grows with the square of this; a file of
/// a few kilobytes must not make one of gigabytes (the largest pipeline here has 41 stages).
pub const MAX_STAGES: usize = 256;

/// The phases a stage can be given, in delivery order.
pub const PHASES: [&str; 7] = [
    "code", "build", "test", "release", "deploy", "monitor", "other",
];

/// Where a stage's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` file, resolved against the pipeline file's folder.
    File(PathBuf),
    /// An `oci://` reference, resolved through pipeline.lock and the plugin store.
    Registry(PluginRef),
}

impl PluginSource {
    /// The registry reference, for a registry plugin.
    pub fn registry(&self) -> Option<&PluginRef> {
        match self {
            Self::File(_) => None,
            Self::Registry(reference) => Some(reference),
        }
    }
}

/// A public key file named in `trusted_keys`; read (and checked) by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// Joined with the pipeline file's folder.
    pub path: PathBuf,
    /// Where it is named, to report an unreadable or malformed key there.
    pub site: Site,
}

/// When a stage runs, given how the stages before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum When {
    /// Only while every earlier stage succeeded (the default).
    OnSuccess,
    /// Only after an earlier stage failed, crashed or errored: rollbacks, notifications.
    OnFailure,
    /// Either way.
    Always,
}

/// Which earlier artifacts a stage may read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputSelection {
    /// No `inputs` key: every output of every earlier stage.
    AllEarlier,
    /// Exactly these references.
    Only(Vec<InputRef>),
}

/// `stage/name` (one output) or `stage/*` (all of that stage's outputs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputRef {
    pub stage: String,
    /// `None` for `stage/*`.
    pub name: Option<String>,
}

impl std::fmt::Display for InputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.stage, name),
            None => write!(f, "{}/*", self.stage),
        }
    }
}

/// Reads and validates a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, Diagnostic> {
    let bytes =
        crate::files::read_bounded(path, crate::files::MAX_TEXT_FILE_BYTES).map_err(|err| {
            Diagnostic::new(path, format!("cannot read the pipeline file: it {err}"))
                .with_hint("check the path; `sluice run` takes the path of a pipeline.toml")
        })?;
    parse(path, &source::decode(path, bytes)?)
}

/// The sha256 (hex) of a pipeline's text.
fn text_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Validates pipeline text; `path` is used for messages and to resolve relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Pipeline, Diagnostic> {
    let src = Source::new(path, text);
    let raw: RawManifest = toml::from_str(text).map_err(|err| {
        let diag = src.toml_error(&err);
        let hint = hints::for_toml_error(&diag.message);
        diag.with_hint(hint)
    })?;
    check_version(raw.version.as_ref(), &src)?;
    let pipeline = &raw.pipeline;
    let name = pipeline.name.get_ref().trim().to_string();
    names::check_pipeline_name(pipeline.name.get_ref()).map_err(|why| {
        src.error(
            pipeline.name.span(),
            format!("invalid pipeline name: {why}"),
        )
        .with_hint("give the pipeline a short name on one line, e.g. `name = \"website\"`")
    })?;
    let description = description(pipeline.description.as_ref(), &src)?;
    if raw.stage.is_empty() {
        return Err(Diagnostic::new(path, "the pipeline has no stages")
            .with_hint("add at least one `[[stage]]` table with a `name` and a `plugin`"));
    }
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let workspace = match &pipeline.workspace {
        Some(rel) => dir.join(rel.get_ref()),
        None => dir.clone(),
    };
    let (secrets, secret_sites) = secrets::resolve(&raw.secrets, &dir, &src)?;
    let declared: BTreeSet<String> = secrets.keys().cloned().collect();
    let trusted_keys = match &pipeline.trusted_keys {
        Some(list) if list.get_ref().is_empty() => {
            return Err(src.error(list.span(), "`trusted_keys` is empty").with_hint(
                "list at least one public key file (.pub, relative to this file), or \
                     remove `trusted_keys` to accept unsigned registry plugins",
            ));
        }
        Some(list) => key_files(list.get_ref(), &dir, &src)?,
        None => Vec::new(),
    };
    let provenance_key = match &pipeline.provenance_key {
        None => None,
        Some(name) if declared.contains(name.get_ref()) => Some(name.get_ref().clone()),
        Some(name) => return Err(undeclared_provenance_key(name, &declared, &src)),
    };
    let instances = matrix::all_instances(&raw.stage, &src)?;
    let cx = Context {
        src,
        dir: &dir,
        declared_secrets: &declared,
        default_limits: pipeline.limits.resolve(Limits::default(), &src)?,
        trusted_keys: &trusted_keys,
        names: raw.stage.iter().map(|s| &s.name).collect(),
        instances,
    };
    let mut stages = Vec::new();
    for (index, stage) in raw.stage.iter().enumerate() {
        stages.extend(stage::resolve(stage, index, &cx)?);
    }
    stage::refuse_clashing_instances(&stages, &raw.stage, &cx)?;
    graph::link(&mut stages, &raw.stage, &cx)?;
    Ok(Pipeline {
        name,
        description,
        file: path.to_path_buf(),
        sha256: text_sha256(text),
        dir,
        workspace,
        secrets,
        secret_sites,
        stages,
        provenance_key,
        fail_fast: pipeline.fail_fast.unwrap_or(true),
    })
}

fn check_version(
    version: Option<&toml::Spanned<toml::Value>>,
    src: &Source<'_>,
) -> Result<(), Diagnostic> {
    let hint = format!("write `version = {MANIFEST_VERSION}` at the top of the file");
    let Some(version) = version else {
        return Err(Diagnostic::new(
            src.path,
            "missing field `version`: the file does not say which format it is written in",
        )
        .with_hint(hint));
    };
    let message = match version.get_ref() {
        toml::Value::Integer(n) if *n == i64::from(MANIFEST_VERSION) => return Ok(()),
        toml::Value::Integer(n) => {
            return Err(src
                .error(
                    version.span(),
                    format!("unsupported pipeline file version {n}"),
                )
                .with_hint(format!(
                    "this sluice reads `version = {MANIFEST_VERSION}` only: upgrade sluice to \
                     read this file, or rewrite it for version {MANIFEST_VERSION}"
                )));
        }
        toml::Value::String(text) => {
            format!("`version` is the string \"{text}\", not a number")
        }
        other => format!("`version` is a {}, not a number", other.type_str()),
    };
    Err(src.error(version.span(), message).with_hint(format!(
        "write `version = {MANIFEST_VERSION}`, without quotes"
    )))
}

/// A pipeline or stage description, within its length limit.
fn description(text: Option<&Text>, src: &Source<'_>) -> Result<Option<String>, Diagnostic> {
    let Some(text) = text else { return Ok(None) };
    names::check_description(text.get_ref()).map_err(|why| {
        src.error(text.span(), format!("the description is too long: {why}"))
            .with_hint("keep descriptions to a paragraph; put longer notes in a comment")
    })?;
    Ok(Some(text.get_ref().clone()))
}

/// `trusted_keys` entries, joined with the pipeline folder; not read here.
fn key_files(list: &[Text], dir: &Path, src: &Source<'_>) -> Result<Vec<KeyFile>, Diagnostic> {
    let mut seen = Unique::default();
    let mut keys = Vec::with_capacity(list.len());
    for item in list {
        let path = item.get_ref().trim();
        if path.is_empty() {
            return Err(src
                .error(item.span(), "a `trusted_keys` entry is empty")
                .with_hint("list public key files (.pub) relative to this file; `sluice key generate NAME` makes a pair"));
        }
        seen.check(src, path, item.span(), || {
            format!("trusted key `{path}` is listed twice")
        })?;
        keys.push(KeyFile {
            path: dir.join(path),
            site: src.site(item.span()),
        });
    }
    Ok(keys)
}

fn undeclared_provenance_key(
    name: &Text,
    declared: &BTreeSet<String>,
    src: &Source<'_>,
) -> Diagnostic {
    let example = format!("`{} = {{ file = \"keys/ci.key\" }}`", name.get_ref());
    let hint = if declared.is_empty() {
        format!("declare it in a [secrets] table, e.g. {example}")
    } else {
        format!(
            "name one of the declared secrets ({}), or declare it under [secrets], e.g. {example}",
            declared.iter().cloned().collect::<Vec<_>>().join(", "),
        )
    };
    src.error(
        name.span(),
        format!(
            "`provenance_key` names `{}`, which is not a declared secret",
            name.get_ref()
        ),
    )
    .with_hint(hint)
}

/// What every stage is checked against.
pub(crate) struct Context<'a> {
    pub src: Source<'a>,
    pub dir: &'a Path,
    pub declared_secrets: &'a BTreeSet<String>,
    /// `[pipeline.limits]` on top of the built-in defaults.
    pub default_limits: Limits,
    /// The pipeline's `trusted_keys`, for stages without their own.
    pub trusted_keys: &'a [KeyFile],
    /// Every stage's `name`, in file order.
    pub names: Vec<&'a Text>,
    /// The stages each written stage becomes (its matrix instances, or itself), in file order.
    pub instances: Vec<Vec<matrix::Instance>>,
}
