//! `[stage.matrix]`: one stage written once, run once per combination of values
//! (`target = ["x86_64", "aarch64"]` × `profile = ["debug", "release"]` → four instances). Each
//! instance is a stage of its own — `build-x86_64-debug` — with its values put into its config
//! wherever a string says `${matrix.target}`, and its own outputs and status.
//! `inputs` and `needs` naming the written stage mean every instance.

use std::collections::{BTreeMap, BTreeSet};

use super::raw::RawStage;
use crate::diagnostic::Diagnostic;
use crate::names;
use crate::source::{Source, ellipsize};

/// At most this many instances: a matrix is a handful of builds, not a load test.
pub const MAX_INSTANCES: usize = 64;

/// One instance: its name and its values by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub values: BTreeMap<String, String>,
}

/// The instances of every stage, in file order; refused at the stage that takes the pipeline
/// past [`super::MAX_STAGES`], before anything else grows with the number of stages.
pub(super) fn all_instances(
    stages: &[RawStage],
    src: &Source<'_>,
) -> Result<Vec<Vec<Instance>>, Diagnostic> {
    let mut all = Vec::with_capacity(stages.len().min(super::MAX_STAGES));
    let mut total = 0usize;
    for stage in stages {
        let instances = instances(stage, src)?;
        total += instances.len();
        if total > super::MAX_STAGES {
            let name = stage.name.get_ref();
            let max = super::MAX_STAGES;
            return Err(src
                .error(
                    stage.name.span(),
                    format!(
                        "the pipeline has more than {max} stages: with stage `{name}` it has \
                         {total}, counting each matrix instance"
                    ),
                )
                .with_hint(format!(
                    "a pipeline runs at most {max} stages; split it into several pipeline files, \
                     or list fewer matrix values"
                )));
        }
        all.push(instances);
    }
    Ok(all)
}

/// The instances of `stage`: one, named as written, when it has no matrix.
pub(super) fn instances(stage: &RawStage, src: &Source<'_>) -> Result<Vec<Instance>, Diagnostic> {
    let name = stage.name.get_ref();
    let Some(matrix) = &stage.matrix else {
        return Ok(vec![Instance {
            name: name.clone(),
            values: BTreeMap::new(),
        }]);
    };
    let site = stage.name.span();
    let error = |message: String, hint: &str| src.error(site.clone(), message).with_hint(hint);
    if matrix.is_empty() {
        return Err(error(
            format!("stage `{name}` has an empty [stage.matrix]"),
            "list at least one key with its values, e.g. `target = [\"x86_64\", \"aarch64\"]`, or remove it",
        ));
    }
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in matrix {
        if names::check_stage_name(key).is_err() {
            return Err(error(
                format!("stage `{name}`: matrix key `{key}` is not a simple name"),
                "use letters, digits, `-` and `_`, starting with a letter",
            ));
        }
        let Some(list) = value.as_array().filter(|list| !list.is_empty()) else {
            return Err(error(
                format!("stage `{name}`: matrix key `{key}` must list its values"),
                "write `key = [\"a\", \"b\"]` (strings, numbers or booleans)",
            ));
        };
        let mut values = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for item in list {
            let text = match item {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => {
                    return Err(error(
                        format!(
                            "stage `{name}`: matrix key `{key}` has a value that is not a string, number or boolean"
                        ),
                        "matrix values become parts of stage names and config strings",
                    ));
                }
            };
            if text.is_empty()
                || !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(error(
                    format!(
                        "stage `{name}`: matrix value `{}` of `{key}` cannot be part of a stage name",
                        text.escape_debug()
                    ),
                    "use letters, digits, `.`, `-` and `_`",
                ));
            }
            if !seen.insert(text.clone()) {
                return Err(error(
                    format!("stage `{name}`: matrix value `{text}` of `{key}` is listed twice"),
                    "list each value once",
                ));
            }
            values.push(text);
        }
        axes.push((key.clone(), values));
    }
    // Checked: many short axes multiply past any integer (64 keys of 2 values make 2^64).
    let count = match axes
        .iter()
        .try_fold(1usize, |count, (_, v)| count.checked_mul(v.len()))
    {
        Some(count) if count <= MAX_INSTANCES => count,
        count => {
            let count = count.map_or_else(
                || {
                    let sizes: Vec<String> =
                        axes.iter().map(|(_, v)| v.len().to_string()).collect();
                    ellipsize(&sizes.join(" × "), 40)
                },
                |count| count.to_string(),
            );
            return Err(error(
                format!(
                    "stage `{name}`: its matrix makes {count} instances, more than {MAX_INSTANCES}"
                ),
                "split it into stages, or list fewer values",
            ));
        }
    };
    // Instance `n` takes, from each axis, the digit of `n` written in the axes' sizes (the last
    // axis the fastest): the order the values are written in, with nothing built per key that is
    // thrown away — a long list of one-value keys makes one instance, and one long name.
    (0..count)
        .map(|n| {
            let mut picks = vec![0; axes.len()];
            let mut rest = n;
            for (pick, (_, values)) in picks.iter_mut().zip(&axes).rev() {
                *pick = rest % values.len();
                rest /= values.len();
            }
            let suffix: Vec<String> = axes
                .iter()
                .zip(&picks)
                .map(|((_, values), &pick)| values[pick].replace('.', "_"))
                .collect();
            let instance = format!("{name}-{}", suffix.join("-"));
            names::check_stage_name(&instance).map_err(|why| {
                error(
                    format!(
                        "stage `{name}`: matrix instance name `{}` is invalid: {why}",
                        ellipsize(&instance, 80)
                    ),
                    "use a shorter stage name or shorter matrix values",
                )
            })?;
            let values = axes
                .iter()
                .zip(&picks)
                .map(|((key, values), &pick)| (key.clone(), values[pick].clone()))
                .collect();
            Ok(Instance {
                name: instance,
                values,
            })
        })
        .collect()
}

/// The stage's config for one instance: `${matrix.KEY}` replaced in every string (plugins see
/// ordinary config values; nothing is added that a strict config would refuse).
pub(super) fn config_for(config: &toml::Table, instance: &Instance) -> toml::Table {
    if instance.values.is_empty() {
        return config.clone();
    }
    fn substitute(value: &mut toml::Value, values: &BTreeMap<String, String>) {
        match value {
            toml::Value::String(text) => {
                for (key, v) in values {
                    *text = text.replace(&format!("${{matrix.{key}}}"), v);
                }
            }
            toml::Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, values)),
            toml::Value::Table(table) => table.iter_mut().for_each(|(_, i)| substitute(i, values)),
            _ => {}
        }
    }
    let mut table = config.clone();
    for (_, value) in table.iter_mut() {
        substitute(value, &instance.values);
    }
    table
}
