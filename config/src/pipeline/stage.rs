//! One `[[stage]]` table: its name, plugin, keys, inputs, grants, limits and gates, each checked
//! against the rest of the pipeline (declared secrets, the stages before it).

use super::raw::{RawStage, Text};
use super::{
    Context, InputSelection, PluginSource, StageSpec, When, description, inputs, key_files,
};
use crate::diagnostic::Diagnostic;
use crate::names;
use crate::plugin_ref::{PluginRef, SCHEME};
use crate::source::Source;

/// Validates the stage at `index`: one spec, or one per matrix instance.
pub(super) fn resolve(
    stage: &RawStage,
    index: usize,
    cx: &Context<'_>,
) -> Result<Vec<StageSpec>, Diagnostic> {
    let src = &cx.src;
    let name = checked_name(stage, index, cx)?;
    let plugin_ref = stage.plugin.get_ref().trim().to_string();
    let plugin = plugin_source(&plugin_ref, &stage.plugin, cx)?;
    let trusted_keys = match &stage.trusted_keys {
        Some(list) => key_files(list, cx.dir, src)?,
        None => cx.trusted_keys.to_vec(),
    };
    let inputs = match &stage.inputs {
        None => InputSelection::AllEarlier,
        Some(list) => InputSelection::Only(inputs::resolve(list, index, cx)?),
    };
    let site = src.site(stage.name.span());
    let grants = stage.allow.resolve(cx.dir, cx.declared_secrets, src)?;
    let cache_key = cache_key(stage.cache_key.as_deref(), &grants.exec, src)?;
    let empty = toml::Table::new();
    let written = stage.config.as_ref().unwrap_or(&empty);
    let template = StageSpec {
        description: description(stage.description.as_ref(), src)?,
        plugin_site: src.site(stage.plugin.span()),
        trusted_keys,
        inputs,
        config_json: String::new(),
        grants,
        limits: stage.limits.resolve(cx.default_limits, src)?,
        manual_approval: approval(stage.approval.as_ref(), src)?,
        when: when(stage.when.as_ref(), src)?,
        phase: phase(stage.phase.as_ref(), src)?,
        needs: super::graph::needs(stage, index, cx)?,
        depends_on: Vec::new(),
        retries: retries(stage.retries.as_ref(), src)?,
        allow_failure: stage.allow_failure.unwrap_or(false),
        cache: stage.cache,
        cache_key,
        cache_ignore: cache_ignore(stage.cache_ignore.as_deref(), src)?,
        makes: makes(stage.makes.as_deref(), src)?,
        runs_on: runs_on(stage.runs_on.as_deref(), src)?,
        quarantine: super::quarantine::resolve(stage.quarantine.as_deref(), src)?,
        group: name.clone(),
        matrix: Default::default(),
        name: name.clone(),
        site,
        plugin_ref,
        plugin,
    };
    cx.instances[index]
        .iter()
        .map(|instance| {
            let config = super::matrix::config_for(written, instance);
            let config_json = serde_json::to_string(&config).map_err(|err| {
                src.error(
                    stage.name.span(),
                    format!("stage `{name}`: its [stage.config] cannot be turned into JSON: {err}"),
                )
                .with_hint("use strings, numbers, booleans, lists and tables in [stage.config]")
            })?;
            Ok(StageSpec {
                name: instance.name.clone(),
                matrix: instance.values.clone(),
                config_json,
                ..template.clone()
            })
        })
        .collect()
}

/// `runs_on`: labels as NATS subject tokens (lower-case letters, digits, `-`, `_`), sorted,
/// each once.
fn runs_on(labels: Option<&[Text]>, src: &Source<'_>) -> Result<Vec<String>, Diagnostic> {
    let mut out = Vec::new();
    for label in labels.unwrap_or_default() {
        let text = label.get_ref();
        let valid = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(src
                .error(label.span(), format!("invalid label {text:?} in `runs_on`"))
                .with_hint("labels are lower-case letters, digits, `-` and `_`, e.g. `runs_on = [\"linux\", \"cargo\"]`"));
        }
        out.push(text.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Refuses a matrix instance whose name another stage (or instance) already has.
pub(super) fn refuse_clashing_instances(
    stages: &[StageSpec],
    raw: &[RawStage],
    cx: &Context<'_>,
) -> Result<(), Diagnostic> {
    for (index, spec) in stages.iter().enumerate() {
        if let Some(other) = stages[..index].iter().find(|s| s.name == spec.name) {
            let written = raw
                .iter()
                .find(|r| *r.name.get_ref() == spec.group)
                .map_or(0..0, |r| r.name.span());
            return Err(cx
                .src
                .error(
                    written,
                    format!(
                        "stage `{}` is named like stage `{}`'s matrix instance `{}`",
                        spec.group, other.group, spec.name
                    ),
                )
                .with_hint("rename one of the stages"));
        }
    }
    Ok(())
}

/// A valid name no earlier stage already uses.
fn checked_name(stage: &RawStage, index: usize, cx: &Context<'_>) -> Result<String, Diagnostic> {
    let name = stage.name.get_ref();
    names::check_stage_name(name).map_err(|why| {
        cx.src
            .error(
                stage.name.span(),
                format!("invalid stage name `{name}`: {why}"),
            )
            .with_hint("use up to 64 letters, digits, `-` and `_`, starting with a letter")
    })?;
    if let Some(first) = cx.names[..index].iter().find(|n| n.get_ref() == name) {
        let line = crate::diagnostic::line_col(cx.src.text, first.span().start).0;
        return Err(cx
            .src
            .error(stage.name.span(), format!("duplicate stage name `{name}`"))
            .with_hint(format!(
                "stage names must be unique; `{name}` is already used on line {line}: rename \
                 one of them"
            )));
    }
    Ok(name.clone())
}

fn plugin_source(
    plugin_ref: &str,
    written: &Text,
    cx: &Context<'_>,
) -> Result<PluginSource, Diagnostic> {
    let src = &cx.src;
    if plugin_ref.is_empty() {
        return Err(src.error(written.span(), "`plugin` is empty").with_hint(
            "set `plugin` to a .wasm component (relative to this file) or to an \
             oci://REGISTRY/REPOSITORY:VERSION reference",
        ));
    }
    if plugin_ref.starts_with(SCHEME) {
        return PluginRef::parse(plugin_ref)
            .map(PluginSource::Registry)
            .map_err(|why| {
                src.error(
                    written.span(),
                    format!("invalid plugin reference `{plugin_ref}`: {why}"),
                )
                .with_hint(
                    "write oci://REGISTRY/REPOSITORY:VERSION or \
                     oci://REGISTRY/REPOSITORY@sha256:DIGEST",
                )
            });
    }
    if let Some((scheme, _)) = plugin_ref.split_once("://") {
        return Err(src
            .error(
                written.span(),
                format!("plugins cannot be fetched over `{scheme}://`"),
            )
            .with_hint(
                "use a .wasm file relative to this file, or publish the plugin to an OCI \
                 registry and write oci://REGISTRY/REPOSITORY:VERSION",
            ));
    }
    Ok(PluginSource::File(cx.dir.join(plugin_ref)))
}

fn approval(text: Option<&Text>, src: &Source<'_>) -> Result<bool, Diagnostic> {
    let Some(text) = text else { return Ok(false) };
    match text.get_ref().as_str() {
        "manual" => Ok(true),
        "none" => Ok(false),
        other => Err(src
            .error(text.span(), format!("invalid approval `{other}`"))
            .with_hint(
                "use \"manual\" to require a person's approval before the stage runs, or \
                 \"none\" (the default)",
            )),
    }
}

/// At most this many retries: a stage that fails ten times more is not going to pass.
const MAX_RETRIES: i64 = 10;

/// At most this many `cache_key` commands: each runs before every lookup.
const MAX_CACHE_KEY_COMMANDS: usize = 8;

/// `cache_key`: each command split on whitespace (no shell), its program one the stage may run.
fn cache_key(
    commands: Option<&[Text]>,
    exec: &[String],
    src: &Source<'_>,
) -> Result<Vec<Vec<String>>, Diagnostic> {
    let commands = commands.unwrap_or_default();
    if let Some(extra) = commands.get(MAX_CACHE_KEY_COMMANDS) {
        return Err(src
            .error(
                extra.span(),
                format!("`cache_key` lists more than {MAX_CACHE_KEY_COMMANDS} commands"),
            )
            .with_hint(
                "each runs before every cache lookup: keep the ones that name a tool's version",
            ));
    }
    let mut out = Vec::new();
    for command in commands {
        let words: Vec<String> = command
            .get_ref()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let Some(program) = words.first() else {
            return Err(src
                .error(command.span(), "an empty command in `cache_key`")
                .with_hint(
                    "write a program and its arguments, e.g. \"cargo --version --verbose\"",
                ));
        };
        if !exec.contains(program) {
            return Err(src
                .error(
                    command.span(),
                    format!("`cache_key` runs `{program}`, which this stage may not run"),
                )
                .with_hint(format!(
                    "add \"{program}\" to [stage.allow] exec, or key on a program it may run ({})",
                    if exec.is_empty() {
                        "it may run none".to_string()
                    } else {
                        exec.join(", ")
                    }
                )));
        }
        out.push(words);
    }
    Ok(out)
}

/// At most this many `cache_ignore` patterns.
const MAX_CACHE_IGNORE: usize = 32;

/// `cache_ignore`: `.gitignore`-style patterns, each a valid glob naming paths inside the folder.
fn cache_ignore(patterns: Option<&[Text]>, src: &Source<'_>) -> Result<Vec<String>, Diagnostic> {
    let patterns = patterns.unwrap_or_default();
    if let Some(extra) = patterns.get(MAX_CACHE_IGNORE) {
        return Err(src
            .error(
                extra.span(),
                format!("`cache_ignore` lists more than {MAX_CACHE_IGNORE} patterns"),
            )
            .with_hint(
                "name the folders the stage installs into (\".venv/\", \"node_modules/\")",
            ));
    }
    let mut out = Vec::new();
    for pattern in patterns {
        let text = pattern.get_ref().trim();
        if let Err(why) = crate::ignore::IgnoreList::new(&[text.to_string()]) {
            return Err(src
                .error(pattern.span(), format!("invalid `cache_ignore` pattern `{text}`: {why}"))
                .with_hint(
                    "write `.gitignore`-style patterns relative to the workspace: \".venv/\", \"*.egg-info/\", \"build/out.log\"",
                ));
        }
        out.push(text.to_string());
    }
    Ok(out)
}

/// `makes`: plain paths inside the workspace (a trailing `/` is allowed and dropped).
fn makes(paths: Option<&[Text]>, src: &Source<'_>) -> Result<Vec<String>, Diagnostic> {
    let mut out = Vec::new();
    for path in paths.unwrap_or_default() {
        let text = path.get_ref().trim().trim_end_matches('/');
        if let Err(why) = names::check_relative_name(text) {
            return Err(src
                .error(path.span(), format!("invalid `makes` path `{text}`: {why}"))
                .with_hint(
                    "name what the stage makes inside the workspace: \".venv\", \"node_modules\"",
                ));
        }
        out.push(text.to_string());
    }
    if out.len() > MAX_CACHE_IGNORE {
        return Err(src
            .error(
                path_span(paths),
                format!("`makes` lists more than {MAX_CACHE_IGNORE} paths"),
            )
            .with_hint("name the folders the stage installs into"));
    }
    Ok(out)
}

fn path_span(paths: Option<&[Text]>) -> std::ops::Range<usize> {
    paths
        .and_then(|p| p.last())
        .map(|p| p.span())
        .unwrap_or_default()
}

fn retries(value: Option<&toml::Spanned<i64>>, src: &Source<'_>) -> Result<u32, Diagnostic> {
    let Some(value) = value else {
        return Ok(0);
    };
    match u32::try_from(*value.get_ref()) {
        Ok(n) if i64::from(n) <= MAX_RETRIES => Ok(n),
        _ => Err(src
            .error(
                value.span(),
                format!("`retries = {}` is out of range", value.get_ref()),
            )
            .with_hint(format!(
                "use 0 to {MAX_RETRIES}: how many more times the stage is tried after it fails"
            ))),
    }
}

fn phase(text: Option<&Text>, src: &Source<'_>) -> Result<Option<String>, Diagnostic> {
    let Some(text) = text else {
        return Ok(None);
    };
    let phase = text.get_ref().trim();
    if super::PHASES.contains(&phase) {
        return Ok(Some(phase.to_string()));
    }
    Err(src
        .error(text.span(), format!("invalid `phase` value `{phase}`"))
        .with_hint(format!("use one of {}", super::PHASES.join(", "))))
}

fn when(text: Option<&Text>, src: &Source<'_>) -> Result<When, Diagnostic> {
    let Some(text) = text else {
        return Ok(When::OnSuccess);
    };
    match text.get_ref().as_str() {
        "on-success" => Ok(When::OnSuccess),
        "on-failure" => Ok(When::OnFailure),
        "always" => Ok(When::Always),
        other => Err(src
            .error(text.span(), format!("invalid `when` value `{other}`"))
            .with_hint("use \"on-success\" (the default), \"on-failure\" or \"always\"")),
    }
}
