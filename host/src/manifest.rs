//! `pipeline.toml`: the versioned file format, its parsing, and the checks that make a user's
//! mistake an error with a file, a line, a column and a fix — never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::grants::{Grants, Limits, RawAllow, RawLimits, RawSecret, SecretSource};
use crate::registry::{PluginRef, SCHEME};
use crate::resolve::Pin;
use crate::signing::TrustedKey;

/// The only `version` this build of sluice reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Spanned<i64>,
    pipeline: RawPipeline,
    #[serde(default)]
    stage: Vec<RawStage>,
    #[serde(default)]
    secrets: BTreeMap<Spanned<String>, RawSecret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    /// The project checkout stages may be granted, relative to this file.
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    /// Public keys (files, relative to this file) one of which must have signed every
    /// registry plugin.
    #[serde(default)]
    trusted_keys: Option<Vec<Spanned<String>>>,
    /// The secret holding the ed25519 key that signs release provenance.
    #[serde(default)]
    provenance_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    plugin: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow: RawAllow,
    #[serde(default)]
    limits: RawLimits,
    /// "manual": a person must approve before the stage runs.
    #[serde(default)]
    approval: Option<Spanned<String>>,
    /// "on-success" (default), "on-failure" or "always".
    #[serde(default)]
    when: Option<Spanned<String>>,
    #[serde(default)]
    config: Option<toml::Table>,
    /// Replaces the pipeline's `trusted_keys` for this stage's plugin.
    #[serde(default)]
    trusted_keys: Option<Vec<Spanned<String>>>,
}

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The manifest file as the user named it.
    pub file: PathBuf,
    /// The directory relative paths in the manifest are resolved against.
    pub dir: PathBuf,
    /// The project checkout (`[pipeline] workspace`, default: `dir`).
    pub workspace: PathBuf,
    /// Declared secrets and where their values come from.
    pub secrets: BTreeMap<String, SecretSource>,
    pub stages: Vec<StageSpec>,
    /// The secret whose value signs release provenance, if any.
    pub provenance_key: Option<String>,
}

/// One `[[stage]]` entry.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub description: Option<String>,
    /// The plugin reference exactly as written.
    pub plugin_ref: String,
    /// The plugin file: resolved against the manifest's directory, or, for a registry plugin,
    /// its copy in the local plugin store once [`crate::resolve`] pinned it.
    pub plugin_path: PathBuf,
    /// Set when `plugin` is an `oci://` reference.
    pub registry: Option<PluginRef>,
    /// The exact registry bytes resolution settled on (registry plugins only).
    pub pin: Option<Pin>,
    /// Keys one of which must have signed this stage's registry plugin (empty: none required).
    pub trusted_keys: Vec<TrustedKey>,
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
}

/// When a stage runs, given how the stages before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only while every earlier stage succeeded (the default).
    OnSuccess,
    /// Only after an earlier stage failed, crashed or errored: rollbacks, notifications.
    OnFailure,
    /// Either way.
    Always,
}

/// Which earlier artifacts a stage may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSelection {
    /// No `inputs` key: every output of every earlier stage.
    AllEarlier,
    /// Exactly these references.
    Only(Vec<InputRef>),
}

/// `stage/name` (one output) or `stage/*` (all of that stage's outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    let source = std::fs::read_to_string(path).map_err(|err| {
        Diagnostic::new(path, format!("cannot read the pipeline file: {err}"))
            .with_hint("check the path; `sluice run` takes the path of a pipeline.toml")
    })?;
    parse(path, &source)
}

/// Validates pipeline text; `path` is used for messages and to resolve plugin paths.
pub fn parse(path: &Path, source: &str) -> Result<Pipeline, Diagnostic> {
    let at = |span: Range<usize>, message: String| Diagnostic::at(path, source, span, message);
    let raw: RawManifest = toml::from_str(source).map_err(|err| {
        let message = err.message().trim_end().to_string();
        let hint = hint_for_toml_error(&message);
        let diag = match err.span() {
            Some(span) => at(span, message),
            None => Diagnostic::new(path, message),
        };
        diag.with_hint(hint)
    })?;

    if *raw.version.get_ref() != i64::from(MANIFEST_VERSION) {
        return Err(at(
            raw.version.span(),
            format!(
                "unsupported pipeline file version {}",
                raw.version.get_ref()
            ),
        )
        .with_hint(format!("this sluice reads `version = {MANIFEST_VERSION}`")));
    }
    let name = raw.pipeline.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(at(
            raw.pipeline.name.span(),
            "the pipeline name is empty".into(),
        )
        .with_hint("give the pipeline a name, e.g. `name = \"website\"`"));
    }
    if raw.stage.is_empty() {
        return Err(Diagnostic::new(path, "the pipeline has no stages".into())
            .with_hint("add at least one `[[stage]]` table with a `name` and a `plugin`"));
    }
    let default_limits = raw.pipeline.limits.resolve(Limits::default(), &at)?;

    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let workspace = match &raw.pipeline.workspace {
        Some(rel) => dir.join(rel),
        None => dir.clone(),
    };
    let mut secrets = BTreeMap::new();
    for (name, raw_secret) in &raw.secrets {
        let valid = !name.get_ref().is_empty()
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(at(
                name.span(),
                format!("invalid secret name `{}`", name.get_ref()),
            )
            .with_hint("use letters, digits, `_` and `-`"));
        }
        secrets.insert(name.get_ref().clone(), raw_secret.resolve(name, &dir, &at)?);
    }
    let declared: BTreeSet<String> = secrets.keys().cloned().collect();
    let load_keys = |list: &Option<Vec<Spanned<String>>>| -> Result<Vec<TrustedKey>, Diagnostic> {
        let mut keys = Vec::new();
        for item in list.iter().flatten() {
            let key = TrustedKey::from_file(&dir.join(item.get_ref())).map_err(|err| {
                at(item.span(), format!("trusted key `{}`: {err:#}", item.get_ref()))
                    .with_hint("list public key files (.pub) relative to this file; `sluice key generate NAME` makes a pair")
            })?;
            keys.push(key);
        }
        Ok(keys)
    };
    let pipeline_keys = load_keys(&raw.pipeline.trusted_keys)?;
    if let Some(list) = &raw.pipeline.trusted_keys
        && list.is_empty()
    {
        return Err(Diagnostic::new(path, "`trusted_keys` is empty".into())
            .with_hint("list at least one public key file, or remove `trusted_keys`"));
    }
    let provenance_key = match &raw.pipeline.provenance_key {
        None => None,
        Some(name) if declared.contains(name.get_ref()) => Some(name.get_ref().clone()),
        Some(name) => {
            return Err(at(
                name.span(),
                format!(
                    "`provenance_key` names `{}`, which is not a declared secret",
                    name.get_ref()
                ),
            )
            .with_hint(
                "declare it under [secrets], e.g. `release_key = { file = \"keys/ci.key\" }`",
            ));
        }
    };
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    let mut stages = Vec::with_capacity(raw.stage.len());
    for stage in raw.stage {
        let stage_name = stage.name.get_ref().clone();
        check_stage_name(&stage_name).map_err(|why| {
            at(
                stage.name.span(),
                format!("invalid stage name `{stage_name}`: {why}"),
            )
            .with_hint("use letters, digits, `-` and `_`, starting with a letter")
        })?;
        if let Some(first) = seen.get(&stage_name) {
            let first_line = crate::diagnostic::line_col(source, first.start).0;
            return Err(at(
                stage.name.span(),
                format!("duplicate stage name `{stage_name}`"),
            )
            .with_hint(format!(
                "stage names must be unique; `{stage_name}` is already used on line \
                         {first_line}: rename one of them"
            )));
        }
        let plugin_ref = stage.plugin.get_ref().trim().to_string();
        if plugin_ref.is_empty() {
            return Err(at(stage.plugin.span(), "the plugin path is empty".into())
                .with_hint("set `plugin` to a .wasm component, relative to this file"));
        }
        let registry = if plugin_ref.starts_with(SCHEME) {
            Some(PluginRef::parse(&plugin_ref).map_err(|why| {
                at(
                    stage.plugin.span(),
                    format!("invalid plugin reference `{plugin_ref}`: {why}"),
                )
                .with_hint("write oci://REGISTRY/REPOSITORY:VERSION or oci://REGISTRY/REPOSITORY@sha256:DIGEST")
            })?)
        } else {
            None
        };
        let trusted_keys = match &stage.trusted_keys {
            Some(_) => load_keys(&stage.trusted_keys)?,
            None => pipeline_keys.clone(),
        };
        let inputs = match &stage.inputs {
            None => InputSelection::AllEarlier,
            Some(list) => {
                let mut refs = Vec::with_capacity(list.len());
                for item in list {
                    let input = parse_input_ref(item.get_ref()).map_err(|why| {
                        at(
                            item.span(),
                            format!("invalid input `{}`: {why}", item.get_ref()),
                        )
                        .with_hint("write inputs as `stage/output-name` or `stage/*`")
                    })?;
                    if !seen.contains_key(&input.stage) {
                        let hint = if input.stage == stage_name {
                            "a stage cannot read its own outputs".to_string()
                        } else if seen.is_empty() {
                            "the first stage has no earlier stages to read from; remove `inputs`"
                                .to_string()
                        } else {
                            let mut earlier: Vec<&str> = seen.keys().map(String::as_str).collect();
                            earlier.sort_unstable();
                            format!(
                                "inputs must name an output of an earlier stage; earlier stages \
                                 are: {}",
                                earlier.join(", ")
                            )
                        };
                        return Err(at(
                            item.span(),
                            format!(
                                "input `{input}` of stage `{stage_name}` names no earlier stage \
                                 `{}`",
                                input.stage
                            ),
                        )
                        .with_hint(hint));
                    }
                    refs.push(input);
                }
                InputSelection::Only(refs)
            }
        };
        let limits = stage.limits.resolve(default_limits, &at)?;
        let manual_approval = match &stage.approval {
            None => false,
            Some(text) => match text.get_ref().as_str() {
                "manual" => true,
                "none" => false,
                other => {
                    return Err(at(text.span(), format!("invalid approval `{other}`"))
                        .with_hint("use \"manual\" to require approval before the stage runs"));
                }
            },
        };
        let when = match &stage.when {
            None => When::OnSuccess,
            Some(text) => match text.get_ref().as_str() {
                "on-success" => When::OnSuccess,
                "on-failure" => When::OnFailure,
                "always" => When::Always,
                other => {
                    return Err(at(text.span(), format!("invalid `when` value `{other}`"))
                        .with_hint("use \"on-success\" (default), \"on-failure\" or \"always\""));
                }
            },
        };
        let grants = stage.allow.resolve(&dir, &declared, &at)?;
        let config_json = match &stage.config {
            Some(table) => serde_json::to_string(table).map_err(|err| {
                Diagnostic::new(
                    path,
                    format!(
                        "stage `{stage_name}`: its [stage.config] cannot be turned into JSON: {err}"
                    ),
                )
            })?,
            None => "{}".to_string(),
        };
        seen.insert(stage_name.clone(), stage.name.span());
        stages.push(StageSpec {
            name: stage_name,
            description: stage.description,
            plugin_path: if registry.is_some() {
                PathBuf::new()
            } else {
                dir.join(&plugin_ref)
            },
            plugin_ref,
            registry,
            pin: None,
            trusted_keys,
            inputs,
            config_json,
            grants,
            limits,
            manual_approval,
            when,
        });
    }

    Ok(Pipeline {
        name,
        description: raw.pipeline.description,
        file: path.to_path_buf(),
        dir,
        workspace,
        secrets,
        stages,
        provenance_key,
    })
}

/// Stage names become directory and log-file names, so they stay simple.
fn check_stage_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(first) if !first.is_ascii_alphabetic() => return Err("it must start with a letter"),
        Some(_) => {}
    }
    if name.len() > 64 {
        return Err("it is longer than 64 characters");
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err("only letters, digits, `-` and `_` are allowed")
    }
}

fn parse_input_ref(text: &str) -> Result<InputRef, &'static str> {
    let Some((stage, name)) = text.split_once('/') else {
        return Err("it has no `/` between the stage and the output name");
    };
    if stage.is_empty() {
        return Err("the stage part is empty");
    }
    if name == "*" {
        return Ok(InputRef {
            stage: stage.to_string(),
            name: None,
        });
    }
    crate::artifacts::check_relative_name(name)?;
    Ok(InputRef {
        stage: stage.to_string(),
        name: Some(name.to_string()),
    })
}

fn hint_for_toml_error(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove or rename the key; see the README's pipeline.toml reference for the keys each table accepts"
    } else if message.contains("missing field") {
        "add the missing key"
    } else if message.contains("invalid type") {
        "check the value's type (strings need quotes, lists use [ ])"
    } else if message.contains("duplicate key") {
        "each key may appear once per table; remove the repeated one"
    } else {
        "this is not valid TOML here: check quotes, brackets and `key = value` syntax (https://toml.io)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{Access, NetGrant};
    use std::time::Duration;

    fn parse_str(text: &str) -> Result<Pipeline, Diagnostic> {
        parse(Path::new("examples/p/pipeline.toml"), text)
    }

    const GOOD: &str = r#"
version = 1
[pipeline]
name = "demo"

[[stage]]
name = "code"
plugin = "a.wasm"

[[stage]]
name = "build"
plugin = "b.wasm"
inputs = ["code/source.tar", "code/*"]
limits = { timeout = "2m", memory = "64 MiB" }
[stage.config]
profile = "release"
"#;

    #[test]
    fn parses_a_valid_pipeline() -> Result<(), Diagnostic> {
        let p = parse_str(GOOD)?;
        assert_eq!(p.name, "demo");
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[0].inputs, InputSelection::AllEarlier);
        assert_eq!(p.stages[0].plugin_path, Path::new("examples/p/a.wasm"));
        assert_eq!(p.stages[1].config_json, r#"{"profile":"release"}"#);
        assert_eq!(p.stages[1].limits.timeout, Duration::from_secs(120));
        assert_eq!(p.stages[1].limits.memory, 64 << 20);
        assert_eq!(p.stages[0].limits, Limits::default());
        assert_eq!(p.stages[0].grants, Grants::none());
        let InputSelection::Only(refs) = &p.stages[1].inputs else {
            panic!("expected explicit inputs");
        };
        assert_eq!(refs[0].name.as_deref(), Some("source.tar"));
        assert_eq!(refs[1].name, None);
        Ok(())
    }

    fn error_of(text: &str) -> Diagnostic {
        match parse_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(diag) => diag,
        }
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let diag = error_of(&GOOD.replace("limits = {", "limit = {"));
        assert!(diag.message.contains("unknown field `limit`"), "{diag}");
        assert_eq!(diag.line, Some(14));
    }

    #[test]
    fn duplicate_stage_names_the_first_one() {
        let diag = error_of(&GOOD.replace("name = \"build\"", "name = \"code\""));
        assert!(
            diag.message.contains("duplicate stage name `code`"),
            "{diag}"
        );
        assert_eq!(diag.line, Some(11));
        assert!(diag.to_string().contains("line 7"), "{diag}");
    }

    #[test]
    fn input_must_name_an_earlier_stage() {
        let diag = error_of(&GOOD.replace("code/source.tar", "test/report.xml"));
        assert!(
            diag.message.contains("names no earlier stage `test`"),
            "{diag}"
        );
        assert!(
            diag.to_string().contains("earlier stages are: code"),
            "{diag}"
        );
    }

    #[test]
    fn wrong_version_is_refused() {
        let diag = error_of(&GOOD.replace("version = 1", "version = 2"));
        assert!(diag.message.contains("unsupported pipeline file version 2"));
        assert_eq!(diag.line, Some(2));
    }

    #[test]
    fn bad_input_syntax_and_names() {
        assert!(
            error_of(&GOOD.replace("code/source.tar", "code"))
                .message
                .contains("no `/`")
        );
        assert!(
            error_of(&GOOD.replace("code/source.tar", "code/../x"))
                .message
                .contains("invalid input")
        );
        assert!(
            error_of(&GOOD.replace("name = \"build\"", "name = \"../b\""))
                .message
                .contains("invalid stage name")
        );
        assert!(
            error_of(&GOOD.replace("\"2m\"", "\"soon\""))
                .message
                .contains("invalid duration")
        );
    }

    const GRANTED: &str = r#"
version = 1
[pipeline]
name = "g"
workspace = ".."
limits = { memory = "256 MiB", log = "1 MiB" }

[secrets]
DEPLOY_TOKEN = { env = "MY_TOKEN" }
KEY = { file = "key.txt" }

[[stage]]
name = "deploy"
plugin = "d.wasm"
limits = { timeout = "10s" }
[stage.allow]
workspace = "read"
dirs = [{ host = "dist", guest = "/dist", mode = "write" }]
env = ["RUST_LOG"]
net = ["127.0.0.1:8080", "Example.com:443"]
exec = ["cargo"]
secrets = ["DEPLOY_TOKEN"]
"#;

    #[test]
    fn parses_grants_limits_and_secrets() -> Result<(), Diagnostic> {
        let p = parse_str(GRANTED)?;
        assert_eq!(p.workspace, Path::new("examples/p/.."));
        assert_eq!(
            p.secrets.get("KEY"),
            Some(&SecretSource::File("examples/p/key.txt".into()))
        );
        let stage = &p.stages[0];
        assert_eq!(stage.limits.memory, 256 << 20);
        assert_eq!(stage.limits.log, 1 << 20);
        assert_eq!(stage.limits.timeout, Duration::from_secs(10));
        let g = &stage.grants;
        assert_eq!(g.workspace, Access::Read);
        assert_eq!(g.dirs[0].host, Path::new("examples/p/dist"));
        assert_eq!(g.dirs[0].access, Access::Write);
        assert_eq!(
            g.net,
            [
                NetGrant {
                    host: "127.0.0.1".into(),
                    port: 8080
                },
                NetGrant {
                    host: "example.com".into(),
                    port: 443
                }
            ]
        );
        assert_eq!(g.exec, ["cargo"]);
        assert_eq!(g.secrets, ["DEPLOY_TOKEN"]);
        Ok(())
    }

    #[test]
    fn bad_grants_are_refused_with_a_place() {
        let cases = [
            ("\"127.0.0.1:8080\"", "\"127.0.0.1\"", "no `:port`"),
            (
                "\"127.0.0.1:8080\"",
                "\"127.0.0.1:99999\"",
                "port is not a number",
            ),
            (
                "secrets = [\"DEPLOY_TOKEN\"]",
                "secrets = [\"NOPE\"]",
                "secret `NOPE` is not declared",
            ),
            ("guest = \"/dist\"", "guest = \"/out\"", "already used"),
            (
                "guest = \"/dist\"",
                "guest = \"dist\"",
                "invalid guest path",
            ),
            (
                "workspace = \"read\"",
                "workspace = \"all\"",
                "invalid access mode",
            ),
            ("memory = \"256 MiB\"", "memory = \"lots\"", "invalid size"),
            (
                "env = [\"RUST_LOG\"]",
                "env = [\"A=B\"]",
                "invalid variable name",
            ),
            (
                "exec = [\"cargo\"]",
                "exec = [\"cargo build\"]",
                "invalid program",
            ),
            (
                "{ env = \"MY_TOKEN\" }",
                "{ }",
                "exactly one of `env` or `file`",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(GRANTED.contains(from), "{from}");
            let diag = error_of(&GRANTED.replacen(from, to, 1));
            assert!(diag.message.contains(expected), "{to}: {diag}");
            assert!(diag.line.is_some(), "{to}: no line in {diag}");
        }
    }
}
