//! The hand-over of inputs: which recorded artifacts a stage may read (its `inputs`), each
//! checked against the digest it was published with before it is handed on, and files given to
//! a stage run alone placed where the run folder keeps artifacts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::pipeline::InputSelection;
use crate::model::artifacts::{self, ArtifactRecord};
use crate::model::layout::{RunLayout, artifact_rel};
use crate::sandbox::bindings::sluice::pipeline::types::Artifact;
use crate::sandbox::spec::{GUEST_INPUT_DIR, InputMount};

/// The artifacts a stage may read, or why its `inputs` cannot be met.
pub fn select_inputs<'a>(
    selection: &InputSelection,
    published: &'a [ArtifactRecord],
) -> Result<Vec<&'a ArtifactRecord>, String> {
    let InputSelection::Only(refs) = selection else {
        return Ok(published.iter().collect());
    };
    let mut chosen: Vec<&ArtifactRecord> = Vec::new();
    for input in refs {
        let from_stage: Vec<&ArtifactRecord> = published
            .iter()
            .filter(|a| a.stage == input.stage)
            .collect();
        let matching: Vec<&ArtifactRecord> = match &input.name {
            None => from_stage.clone(),
            Some(name) => from_stage
                .iter()
                .copied()
                .filter(|a| &a.name == name)
                .collect(),
        };
        if matching.is_empty() && input.name.is_some() {
            let produced: Vec<&str> = from_stage.iter().map(|a| a.name.as_str()).collect();
            return Err(format!(
                "input `{input}` was not produced: stage `{}` published {}",
                input.stage,
                if produced.is_empty() {
                    "no outputs".to_string()
                } else {
                    produced.join(", ")
                }
            ));
        }
        for artifact in matching {
            if !chosen.iter().any(|c| std::ptr::eq(*c, artifact)) {
                chosen.push(artifact);
            }
        }
    }
    Ok(chosen)
}

/// Hands a stage its inputs — each verified against its recorded digest first, so a stage never
/// consumes bytes that changed after they were recorded — and returns where it sees them: one
/// read-only mount per earlier stage, at `/in/<stage>`.
///
/// A stage that reads every artifact an earlier stage published, and runs no host programs, is
/// given that stage's artifact folder itself (read-only): nothing is linked or copied, and no
/// folder is made or removed. Otherwise the chosen files are hard-linked under `work_dir`
/// (`<stage>/<name>`); `programs`: the stage runs host programs, which could write through a hard
/// link or into a mounted folder, so they are copied.
pub fn hand_over(
    layout: &RunLayout,
    inputs: &[&ArtifactRecord],
    available: &[ArtifactRecord],
    work_dir: &Path,
    programs: bool,
) -> Result<Vec<InputMount>> {
    let mut producers: Vec<&str> = Vec::new();
    for artifact in inputs {
        if !producers.contains(&artifact.stage.as_str()) {
            producers.push(&artifact.stage);
        }
    }
    let mut mounts = Vec::with_capacity(producers.len());
    for producer in producers {
        let chosen: Vec<&&ArtifactRecord> = inputs.iter().filter(|a| a.stage == producer).collect();
        let mut sources = Vec::with_capacity(chosen.len());
        for artifact in &chosen {
            let source = artifacts::verify_recorded(&layout.dir, artifact)
                .map_err(|why| anyhow::anyhow!("{why}; refusing to hand it on"))?;
            sources.push(source);
        }
        let published = available.iter().filter(|a| a.stage == producer).count();
        let folder = layout.artifacts_of(producer);
        let host = if !programs && chosen.len() == published && holds_only_files(&folder, published)
        {
            folder
        } else {
            let dir = work_dir.join(producer);
            for (artifact, source) in chosen.iter().zip(&sources) {
                artifacts::hand_over(source, &dir.join(&artifact.name), programs)?;
            }
            dir
        };
        mounts.push(InputMount {
            host,
            guest: format!("{GUEST_INPUT_DIR}/{producer}"),
        });
    }
    Ok(mounts)
}

/// Whether `folder` holds exactly `count` regular files (in any subfolders) and nothing else
/// that is not a folder: then it is the published artifacts and only them.
fn holds_only_files(folder: &Path, count: usize) -> bool {
    fn walk(dir: &Path, files: &mut usize) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), files)?;
            } else if kind.is_file() {
                *files += 1;
            } else {
                return Err(std::io::Error::other("not a file or folder"));
            }
        }
        Ok(())
    }
    let mut files = 0;
    walk(folder, &mut files).is_ok() && files == count
}

/// The inputs as the plugin is told of them: where it finds each under `/in`.
pub fn guest_artifacts(inputs: &[&ArtifactRecord]) -> Vec<Artifact> {
    inputs
        .iter()
        .map(|a| Artifact {
            stage: a.stage.clone(),
            name: a.name.clone(),
            path: format!("{GUEST_INPUT_DIR}/{}/{}", a.stage, a.name),
            media_type: a.media_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
        })
        .collect()
}

/// A file handed to a stage run alone as the output `name` of stage `stage`.
#[derive(Debug, Clone)]
pub struct GivenInput {
    pub stage: String,
    pub name: String,
    pub file: PathBuf,
}

impl GivenInput {
    /// Copies the file where the run folder keeps that artifact and records it, refusing names
    /// that would lead elsewhere and the stage's own outputs.
    pub fn place(&self, layout: &RunLayout, own_stage: &str) -> Result<ArtifactRecord> {
        crate::config::names::check_stage_name(&self.stage)
            .map_err(|why| anyhow::anyhow!("input stage `{}`: {why}", self.stage))?;
        crate::config::names::check_relative_name(&self.name)
            .map_err(|why| anyhow::anyhow!("input name `{}`: {why}", self.name))?;
        if self.stage == own_stage {
            anyhow::bail!("an input cannot come from the stage itself (`{own_stage}`)");
        }
        let relative = artifact_rel(&self.stage, &self.name);
        let dest = layout.dir.join(&relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&self.file, &dest)
            .with_context(|| format!("cannot read input {}", self.file.display()))?;
        let (sha256, size) = artifacts::sha256_file(&dest)?;
        Ok(ArtifactRecord {
            stage: self.stage.clone(),
            name: self.name.clone(),
            path: relative,
            media_type: "application/octet-stream".into(),
            size,
            sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pipeline::InputRef;

    fn artifact(stage: &str, name: &str) -> ArtifactRecord {
        ArtifactRecord {
            stage: stage.into(),
            name: name.into(),
            path: artifact_rel(stage, name),
            media_type: "text/plain".into(),
            size: 1,
            sha256: "00".into(),
        }
    }

    #[test]
    fn selects_named_wildcard_and_all_inputs() {
        let published = [artifact("a", "x"), artifact("a", "y"), artifact("b", "z")];
        let all = select_inputs(&InputSelection::AllEarlier, &published).unwrap_or_default();
        assert_eq!(all.len(), 3);
        let refs = InputSelection::Only(vec![
            InputRef {
                stage: "b".into(),
                name: Some("z".into()),
            },
            InputRef {
                stage: "a".into(),
                name: None,
            },
            InputRef {
                stage: "b".into(),
                name: None,
            },
        ]);
        let chosen = select_inputs(&refs, &published).unwrap_or_default();
        let names: Vec<String> = chosen.iter().map(|a| a.reference()).collect();
        assert_eq!(names, ["b/z", "a/x", "a/y"]);
    }

    #[test]
    fn a_missing_named_input_says_what_exists() {
        let published = [artifact("a", "x")];
        let refs = InputSelection::Only(vec![InputRef {
            stage: "a".into(),
            name: Some("nope".into()),
        }]);
        let err = select_inputs(&refs, &published).err().unwrap_or_default();
        assert!(err.contains("`a/nope` was not produced"), "{err}");
        assert!(err.contains("published x"), "{err}");
    }
}
