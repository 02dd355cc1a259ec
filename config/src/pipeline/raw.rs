//! pipeline.toml exactly as written: the serde shapes, with spans for every value a later check
//! may need to point at. `deny_unknown_fields` everywhere, so a typo is an error, not a no-op.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use toml::Spanned;

pub(crate) type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a pipeline file")]
pub(crate) struct RawManifest {
    /// Optional here so a missing `version` gets its own message.
    #[serde(default)]
    pub version: Option<Spanned<toml::Value>>,
    pub pipeline: RawPipeline,
    #[serde(default, deserialize_with = "stages")]
    pub stage: Vec<RawStage>,
    #[serde(default)]
    pub secrets: BTreeMap<Text, RawSecret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [pipeline] table")]
pub(crate) struct RawPipeline {
    pub name: Text,
    #[serde(default)]
    pub description: Option<Text>,
    /// The project checkout stages may be granted, relative to this file.
    #[serde(default)]
    pub workspace: Option<Text>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Public keys (files, relative to this file) one of which must have signed every
    /// registry plugin.
    #[serde(default)]
    pub trusted_keys: Option<Spanned<Vec<Text>>>,
    /// The secret holding the ed25519 key that signs release provenance.
    #[serde(default)]
    pub provenance_key: Option<Text>,
    /// When a stage does not succeed, cancel the stages running beside it (default true).
    #[serde(default)]
    pub fail_fast: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[stage]] table")]
pub(crate) struct RawStage {
    pub name: Text,
    pub plugin: Text,
    #[serde(default)]
    pub description: Option<Text>,
    #[serde(default)]
    pub inputs: Option<Vec<Text>>,
    #[serde(default)]
    pub allow: RawAllow,
    #[serde(default)]
    pub limits: RawLimits,
    /// "manual": a person must approve before the stage runs.
    #[serde(default)]
    pub approval: Option<Text>,
    /// "on-success" (default), "on-failure" or "always".
    #[serde(default)]
    pub when: Option<Text>,
    /// What the stage is in the delivery chain ("release", ...): the only phase provenance
    /// trusts.
    #[serde(default)]
    pub phase: Option<Text>,
    /// Stages this one waits for besides those its `inputs` read from.
    #[serde(default)]
    pub needs: Option<Vec<Text>>,
    /// How many more times a stage that did not succeed is tried.
    #[serde(default)]
    pub retries: Option<Spanned<i64>>,
    /// The run goes on (and succeeds) when this stage does not.
    #[serde(default)]
    pub allow_failure: Option<bool>,
    /// Serve the stage from the stage cache when nothing it depends on changed (`true` for a
    /// stage the default would not cache, `false` to never cache it).
    #[serde(default)]
    pub cache: Option<bool>,
    /// Commands whose output joins the stage-cache key (`["cargo --version --verbose"]`): what
    /// a content key cannot see, like the toolchain behind a rustup proxy.
    #[serde(default)]
    pub cache_key: Option<Vec<Text>>,
    /// Paths of the workspace (and granted folders) the stage-cache key leaves out, as
    /// `.gitignore` patterns (`[".venv/", "node_modules/"]`): what the stage itself installs.
    #[serde(default)]
    pub cache_ignore: Option<Vec<Text>>,
    /// What the stage makes in the workspace for the stages after it (`[".venv"]`,
    /// `["node_modules"]`): left out of stage-cache keys, and a cache hit needs it there.
    #[serde(default)]
    pub makes: Option<Vec<Text>>,
    /// One instance of the stage per combination of these values.
    #[serde(default)]
    pub matrix: Option<toml::Table>,
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Replaces the pipeline's `trusted_keys` for this stage's plugin.
    #[serde(default)]
    pub trusted_keys: Option<Vec<Text>>,
    /// Labels an agent must have to run this stage in a distributed run (`--nats`).
    #[serde(default)]
    pub runs_on: Option<Vec<Text>>,
    /// Known-flaky tests that may fail without failing the stage, each until a date.
    #[serde(default)]
    pub quarantine: Option<Vec<RawQuarantine>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a quarantined test, e.g. { test = \"tests::sometimes\", until = \"2027-01-31\" }"
)]
pub(crate) struct RawQuarantine {
    pub test: Text,
    pub until: Text,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [stage.allow] table")]
pub(crate) struct RawAllow {
    #[serde(default)]
    pub workspace: Option<Text>,
    #[serde(default)]
    pub dirs: Vec<RawDir>,
    #[serde(default)]
    pub env: Vec<Text>,
    #[serde(default)]
    pub net: Vec<Text>,
    #[serde(default)]
    pub exec: Vec<Text>,
    #[serde(default)]
    pub exec_env: Vec<Text>,
    /// Variables off sluice's safe list the user lets the plugin set anyway.
    #[serde(default)]
    pub exec_env_unchecked: Vec<Text>,
    #[serde(default)]
    pub secrets: Vec<Text>,
    /// Cache volumes by name, each with the variable its host programs find it in.
    #[serde(default)]
    pub caches: std::collections::BTreeMap<String, Text>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a dir grant table, e.g. { host = \"dist\", guest = \"/dist\" }"
)]
pub(crate) struct RawDir {
    pub host: Text,
    pub guest: Text,
    #[serde(default)]
    pub mode: Option<Text>,
    /// Mount only if the host folder exists (e.g. a `.git` that a copy may lack).
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a limits table")]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub timeout: Option<Text>,
    #[serde(default)]
    pub memory: Option<Text>,
    #[serde(default)]
    pub log: Option<Text>,
    #[serde(default)]
    pub outputs: Option<Spanned<i64>>,
    #[serde(default)]
    pub output_size: Option<Text>,
}

/// Where a secret's value comes from (`[secrets]` table).
#[derive(Debug, Deserialize, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a secret source, e.g. { env = \"TOKEN\" } or { file = \"token.txt\" }"
)]
pub(crate) struct RawSecret {
    #[serde(default)]
    pub env: Option<Text>,
    #[serde(default)]
    pub file: Option<Text>,
}

/// `stage` as a list whose mistakes are explained in terms of `[[stage]]` tables.
fn stages<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RawStage>, D::Error> {
    struct Stages;
    impl<'de> Visitor<'de> for Stages {
        type Value = Vec<RawStage>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("[[stage]] tables")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut stages = Vec::new();
            while let Some(stage) = seq.next_element()? {
                stages.push(stage);
            }
            Ok(stages)
        }
    }
    deserializer.deserialize_seq(Stages)
}
