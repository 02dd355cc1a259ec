//! Publishing what a stage declared: each output checked against the output contract and the
//! stage's limits, hashed, and refused if it holds a secret; secrets never stay in a run folder.

use std::path::Path;

use crate::config::limits::fmt_bytes;
use crate::model::artifacts::{self, ArtifactRecord};
use crate::model::events::{Event, LogSource};
use crate::model::report::{StageRecord, StageStatus};
use crate::model::text::{MAX_MESSAGE_BYTES, one_line};
use crate::sandbox::bindings::StageResult;

use super::stage::{Ending, StageExecution};

impl StageExecution<'_> {
    /// Deletes any file under `dir` that holds a secret value, declared or not: secrets never
    /// stay on disk in a run folder.
    pub(super) fn sweep_secrets(&self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(next) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&next) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => stack.push(path),
                    Ok(kind) if kind.is_file() => {
                        let leaked = std::fs::read(&path).is_ok_and(|b| self.masker.found_in(&b));
                        if leaked && std::fs::remove_file(&path).is_ok() {
                            self.events.emit(Event::Log {
                                stage: self.spec.name.clone(),
                                source: LogSource::Warn,
                                line: format!(
                                    "sluice deleted {}: it contained a secret value",
                                    path.strip_prefix(dir).unwrap_or(&path).display()
                                ),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Checks and hashes what the stage declared; any broken promise fails the stage.
    pub(super) fn publish(
        &self,
        result: StageResult,
        out_dir: &Path,
        record: &mut StageRecord,
    ) -> Ending {
        let name = &self.spec.name;
        let limits = self.spec.limits;
        record.summary = result
            .summary
            .map(|summary| one_line(&summary, MAX_MESSAGE_BYTES));
        if result.outputs.len() as u64 > limits.outputs {
            return Ending::error(format!(
                "declared {} outputs, over its limit of {}",
                result.outputs.len(),
                limits.outputs
            ));
        }
        let mut total: u64 = 0;
        let mut outputs = Vec::with_capacity(result.outputs.len());
        for output in result.outputs {
            if outputs
                .iter()
                .any(|o: &ArtifactRecord| o.name == output.name)
            {
                let err = artifacts::OutputError::Duplicate { name: output.name };
                return Ending::error(format!("broke the output contract: {err}"));
            }
            if let Err(err) = artifacts::check_output(out_dir, &output.name) {
                return Ending::error(format!("broke the output contract: {err}"));
            }
            let file = out_dir.join(&output.name);
            let (sha256, size) = match artifacts::sha256_file(&file) {
                Ok(digest) => digest,
                Err(err) => return Ending::error(format!("{err:#}")),
            };
            total = total.saturating_add(size);
            if total > limits.output_size {
                return Ending::error(format!(
                    "wrote more than its {} output size limit",
                    fmt_bytes(limits.output_size)
                ));
            }
            if !self.masker.is_empty()
                && std::fs::read(&file).is_ok_and(|bytes| self.masker.found_in(&bytes))
            {
                // The file must not stay on disk either.
                let removed = std::fs::remove_file(&file).is_ok();
                return Ending::error(format!(
                    "output `{}` contains the value of a secret; secrets must never be written to artifacts ({})",
                    output.name,
                    if removed {
                        "the file was deleted"
                    } else {
                        "the file could not be deleted"
                    }
                ));
            }
            let media_type = if output.media_type.trim().is_empty() {
                "application/octet-stream".to_string()
            } else {
                output.media_type
            };
            let artifact = ArtifactRecord {
                stage: name.clone(),
                path: format!("artifacts/{name}/{}", output.name),
                name: output.name,
                media_type,
                size,
                sha256,
            };
            self.events.emit(Event::ArtifactWritten {
                stage: name.clone(),
                artifact: artifact.clone(),
            });
            outputs.push(artifact);
        }
        record.outputs = outputs;
        Ending {
            status: StageStatus::Succeeded,
            message: None,
        }
    }
}
