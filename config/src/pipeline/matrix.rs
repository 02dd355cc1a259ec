//! `[stage.matrix]`: one stage written once, run once per combination of values
//! (`target = ["x86_64", "aarch64"]` × `profile = ["debug", "release"]` → four instances). Each
//! instance is a stage of its own — `build-x86_64-debug` — with its values put into its config
//! wherever a string says `${matrix.target}`, and its own outputs and status.
//! `inputs` and `needs` naming the written stage mean every instance.

use std::collections::BTreeMap;

use super::raw::RawStage;
use crate::diagnostic::Diagnostic;
use crate::names;
use crate::source::Source;

/// At most this many instances: a matrix is a handful of builds, not a load test.
pub const MAX_INSTANCES: usize = 64;

/// One instance: its name and its values by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub values: BTreeMap<String, String>,
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
            if values.contains(&text) {
                return Err(error(
                    format!("stage `{name}`: matrix value `{text}` of `{key}` is listed twice"),
                    "list each value once",
                ));
            }
            values.push(text);
        }
        axes.push((key.clone(), values));
    }
    let count = axes.iter().map(|(_, v)| v.len()).product::<usize>();
    if count > MAX_INSTANCES {
        return Err(error(
            format!(
                "stage `{name}`: its matrix makes {count} instances, more than {MAX_INSTANCES}"
            ),
            "split it into stages, or list fewer values",
        ));
    }
    let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (key, values) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.insert(key.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|values| {
            let suffix: Vec<String> = axes
                .iter()
                .map(|(key, _)| values[key].replace('.', "_"))
                .collect();
            let instance = format!("{name}-{}", suffix.join("-"));
            names::check_stage_name(&instance).map_err(|why| {
                error(
                    format!("stage `{name}`: matrix instance name `{instance}` is invalid: {why}"),
                    "use a shorter stage name or shorter matrix values",
                )
            })?;
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
