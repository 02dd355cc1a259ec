//! Pipelines, built instead of spelled out: `Pipeline` and `Stage` mirror pipeline.toml's keys and
//! render the file a user would write:
//!
//!     Pipeline::three_stage(
//!         Stage::new("attack", "escape")          // plugins/dist/escape.wasm
//!             .limit("timeout", "1s")             // limits = { timeout = "1s" }
//!             .allow("workspace", "read")         // [stage.allow]
//!             .config("path", "/workspace/fifo"), // [stage.config]
//!     )
//!     .set("workspace", "ws")                     // [pipeline]
//!     .secret("TOKEN", table([("env", "VAR")]))   // [secrets]

use std::path::{Path, PathBuf};

use sluice::model::report::StageStatus;

/// A TOML value as a pipeline file spells it. Tables keep the order they were given in.
#[derive(Clone, Debug)]
pub enum Toml {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Toml>),
    Table(Vec<(String, Toml)>),
}

impl From<&str> for Toml {
    fn from(value: &str) -> Self {
        Self::Str(value.to_string())
    }
}

impl From<String> for Toml {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

impl From<&Path> for Toml {
    fn from(value: &Path) -> Self {
        Self::Str(value.display().to_string())
    }
}

impl From<&PathBuf> for Toml {
    fn from(value: &PathBuf) -> Self {
        value.as_path().into()
    }
}

impl From<i32> for Toml {
    fn from(value: i32) -> Self {
        Self::Int(value.into())
    }
}

impl From<bool> for Toml {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl<T: Into<Toml>> From<Vec<T>> for Toml {
    fn from(items: Vec<T>) -> Self {
        Self::Array(items.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Toml>, const N: usize> From<[T; N]> for Toml {
    fn from(items: [T; N]) -> Self {
        Self::Array(items.into_iter().map(Into::into).collect())
    }
}

/// An inline table: `table([("host", "data"), ("guest", "/data")])`.
pub fn table<V: Into<Toml>, const N: usize>(pairs: [(&str, V); N]) -> Toml {
    Toml::Table(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value.into()))
            .collect(),
    )
}

impl Toml {
    /// The value written inline, as after `key = `.
    fn inline(&self) -> String {
        match self {
            Self::Str(text) => quoted(text),
            Self::Int(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
            Self::Array(items) => {
                let items: Vec<String> = items.iter().map(Self::inline).collect();
                format!("[{}]", items.join(", "))
            }
            Self::Table(pairs) if pairs.is_empty() => "{}".to_string(),
            Self::Table(pairs) => format!("{{ {} }}", key_values(pairs, ", ")),
        }
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `key = value` pairs joined by `separator`; keys that are not bare are quoted.
fn key_values(pairs: &[(String, Toml)], separator: &str) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            let bare = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let key = if bare { key.clone() } else { quoted(key) };
            format!("{key} = {}", value.inline())
        })
        .collect::<Vec<_>>()
        .join(separator)
}

/// One `[[stage]]`. `config`, `allow` and `limit` take pipeline.toml's own keys.
#[derive(Clone, Debug)]
pub struct Stage {
    name: String,
    plugin: String,
    inputs: Option<Vec<String>>,
    keys: Vec<(String, Toml)>,
    limits: Vec<(String, Toml)>,
    allow: Vec<(String, Toml)>,
    config: Vec<(String, Toml)>,
}

impl Stage {
    /// A stage running the built plugin `plugins/dist/PLUGIN.wasm`.
    pub fn new(name: &str, plugin: &str) -> Self {
        Self::with_plugin(name, format!("{{plugin:{plugin}}}"))
    }

    /// A stage whose `plugin = ` is written as given: a path or an `oci://` reference.
    pub fn with_plugin(name: &str, plugin: impl std::fmt::Display) -> Self {
        Self {
            name: name.to_string(),
            plugin: plugin.to_string(),
            inputs: None,
            keys: Vec::new(),
            limits: Vec::new(),
            allow: Vec::new(),
            config: Vec::new(),
        }
    }

    /// `inputs = [...]`.
    pub fn inputs<const N: usize>(mut self, inputs: [&str; N]) -> Self {
        self.inputs
            .get_or_insert_with(Vec::new)
            .extend(inputs.iter().map(|i| i.to_string()));
        self
    }

    /// `phase = "..."`: what the pipeline says the stage is.
    pub fn phase(self, phase: &str) -> Self {
        self.set("phase", phase)
    }

    /// Any other key of the stage's table (`approval`, `when`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.keys.push((key.to_string(), value.into()));
        self
    }

    /// One key of `[stage.config]`.
    pub fn config(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.config.push((key.to_string(), value.into()));
        self
    }

    /// One key of `[stage.allow]`: `net`, `exec`, `env`, `dirs`, `workspace`, `secrets`.
    pub fn allow(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.allow.push((key.to_string(), value.into()));
        self
    }

    /// One key of `limits = { ... }`: `timeout`, `memory`, `log`, `outputs`, `output_size`.
    pub fn limit(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.limits.push((key.to_string(), value.into()));
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[stage]]\n");
        out.push_str(&key_values(
            &[
                ("name".into(), self.name.as_str().into()),
                ("plugin".into(), self.plugin.as_str().into()),
            ],
            "\n",
        ));
        out.push('\n');
        if let Some(inputs) = &self.inputs {
            let inputs = Toml::Array(inputs.iter().map(|i| i.as_str().into()).collect());
            out.push_str(&format!("inputs = {}\n", inputs.inline()));
        }
        if !self.keys.is_empty() {
            out.push_str(&key_values(&self.keys, "\n"));
            out.push('\n');
        }
        if !self.limits.is_empty() {
            out.push_str(&format!(
                "limits = {}\n",
                Toml::Table(self.limits.clone()).inline()
            ));
        }
        for (header, pairs) in [("allow", &self.allow), ("config", &self.config)] {
            if !pairs.is_empty() {
                out.push_str(&format!("[stage.{header}]\n{}\n", key_values(pairs, "\n")));
            }
        }
    }
}

/// A pipeline.toml: `[pipeline]` settings, `[secrets]` and stages, in order.
#[derive(Clone, Debug)]
pub struct Pipeline {
    settings: Vec<(String, Toml)>,
    secrets: Vec<(String, Toml)>,
    stages: Vec<Stage>,
}

impl Pipeline {
    pub fn new(name: &str) -> Self {
        Self {
            settings: vec![("name".into(), name.into())],
            secrets: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// `code` (emit writes `a.txt`), then `middle`, then `release` (checksum): the shape for
    /// checking that a stage's outcome stops the chain and leaves earlier artifacts alone.
    pub fn three_stage(middle: Stage) -> Self {
        Self::around([middle])
    }

    /// `three_stage` with several stages in the middle.
    pub fn around(middle: impl IntoIterator<Item = Stage>) -> Self {
        let code = Stage::new("code", "emit")
            .phase("code")
            .config("files", table([("a.txt", "alpha\n")]));
        let mut pipeline = Self::new("t").stage(code);
        pipeline.stages.extend(middle);
        pipeline.stage(Stage::new("release", "checksum").phase("release"))
    }

    /// One key of `[pipeline]`: `workspace`, `trusted_keys`, `provenance_key`.
    pub fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.settings.push((key.to_string(), value.into()));
        self
    }

    /// One entry of `[secrets]`, e.g. `table([("env", "VAR")])`.
    pub fn secret(mut self, name: &str, source: Toml) -> Self {
        self.secrets.push((name.to_string(), source));
        self
    }

    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(stage);
        self
    }

    /// The file's text; built plugins are `{plugin:NAME}`, which `Sandbox::pipeline` resolves.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "version = 1\n\n[pipeline]\n{}\n",
            key_values(&self.settings, "\n")
        );
        if !self.secrets.is_empty() {
            out.push_str(&format!(
                "\n[secrets]\n{}\n",
                key_values(&self.secrets, "\n")
            ));
        }
        for stage in &self.stages {
            stage.render(&mut out);
        }
        out
    }
}

/// `code`, `middle`, `release` (as in `Pipeline::three_stage`), stopped at `middle` with `status`.
pub fn stopped_at(middle: &str, status: StageStatus) -> [(&str, StageStatus); 3] {
    use StageStatus::{Skipped, Succeeded};
    [("code", Succeeded), (middle, status), ("release", Skipped)]
}

/// `code`, `middle`, `release`, with `middle` refused before anything ran.
pub fn refused_before_running(middle: &str) -> [(&str, StageStatus); 3] {
    use StageStatus::{Error, Skipped};
    [("code", Skipped), (middle, Error), ("release", Skipped)]
}

/// `code`, `middle`, `release`, all succeeded.
pub fn all_succeeded(middle: &str) -> [(&str, StageStatus); 3] {
    use StageStatus::Succeeded;
    [
        ("code", Succeeded),
        (middle, Succeeded),
        ("release", Succeeded),
    ]
}
