//! What a stage sees of its run — config, inputs, output directory — with helpers that turn
//! I/O and parse errors into messages that name the file.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::bindings::sluice::pipeline::types::{Output, StageContext, StageResult, StageRun};
use crate::{Artifact, Failure, Phase};

/// The stage's view of the run. Outputs written through it are declared automatically.
#[derive(Debug)]
pub struct Context {
    raw: StageContext,
    outputs: Vec<Output>,
    summary: Option<String>,
}

impl Context {
    pub(crate) fn new(raw: StageContext) -> Self {
        Self {
            raw,
            outputs: Vec::new(),
            summary: None,
        }
    }

    pub(crate) fn into_result(self) -> StageResult {
        StageResult {
            outputs: self.outputs,
            summary: self.summary,
        }
    }

    pub fn pipeline(&self) -> &str {
        &self.raw.pipeline
    }

    pub fn stage(&self) -> &str {
        &self.raw.stage
    }

    pub fn run_id(&self) -> &str {
        &self.raw.run_id
    }

    pub fn phase(&self) -> Phase {
        self.raw.phase
    }

    /// The `[stage.config]` table, deserialized. Missing keys use serde defaults.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_str(&self.raw.config)
            .map_err(|err| Failure::new(format!("invalid [stage.config]: {err}")))
    }

    /// The raw config JSON.
    pub fn config_json(&self) -> &str {
        &self.raw.config
    }

    /// The stages that ran before this one in this run (name, plugin, its digest, status).
    pub fn earlier_stages(&self) -> &[StageRun] {
        &self.raw.earlier
    }

    /// Every artifact this stage may read.
    pub fn inputs(&self) -> &[Artifact] {
        &self.raw.inputs
    }

    /// The input named `stage/name`, or just `name` when only one input has that name.
    pub fn input(&self, reference: &str) -> Result<&Artifact, Failure> {
        let found: Vec<&Artifact> = match reference.split_once('/') {
            Some((stage, name)) if self.raw.inputs.iter().any(|a| a.stage == stage) => self
                .raw
                .inputs
                .iter()
                .filter(|a| a.stage == stage && a.name == name)
                .collect(),
            _ => self
                .raw
                .inputs
                .iter()
                .filter(|a| a.name == reference)
                .collect(),
        };
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(Failure::new(format!(
                "no input `{reference}`; inputs are: {}",
                self.input_list()
            ))),
            _ => Err(Failure::new(format!(
                "`{reference}` is ambiguous; use `stage/name` (inputs are: {})",
                self.input_list()
            ))),
        }
    }

    fn input_list(&self) -> String {
        if self.raw.inputs.is_empty() {
            return "none".into();
        }
        let names: Vec<String> = self
            .raw
            .inputs
            .iter()
            .map(|a| format!("{}/{}", a.stage, a.name))
            .collect();
        names.join(", ")
    }

    pub fn read(&self, artifact: &Artifact) -> Result<Vec<u8>, Failure> {
        std::fs::read(&artifact.path)
            .map_err(|err| Failure::new(format!("cannot read input {}: {err}", artifact.path)))
    }

    pub fn read_to_string(&self, artifact: &Artifact) -> Result<String, Failure> {
        String::from_utf8(self.read(artifact)?)
            .map_err(|_| Failure::new(format!("input {} is not UTF-8 text", artifact.path)))
    }

    /// Where an output named `name` goes (inside the output directory).
    pub fn output_path(&self, name: &str) -> PathBuf {
        PathBuf::from(&self.raw.output_dir).join(name)
    }

    /// Writes an output file and declares it.
    pub fn write_output(
        &mut self,
        name: &str,
        media_type: &str,
        bytes: impl AsRef<[u8]>,
    ) -> Result<(), Failure> {
        let path = self.output_path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| {
                Failure::new(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        std::fs::write(&path, bytes).map_err(|err| {
            Failure::new(format!("cannot write output {}: {err}", path.display()))
        })?;
        self.declare_output(name, media_type);
        Ok(())
    }

    /// Declares a file already written under [`Context::output_path`].
    pub fn declare_output(&mut self, name: &str, media_type: &str) {
        self.outputs.retain(|o| o.name != name);
        self.outputs.push(Output {
            name: name.to_string(),
            media_type: media_type.to_string(),
        });
    }

    /// The one line shown beside the stage when it finishes.
    pub fn set_summary(&mut self, summary: impl Into<String>) {
        self.summary = Some(summary.into());
    }
}
