//! Publishing what a stage declared: each output checked against the output contract and the
//! stage's limits, then hashed (files holding secrets are gone already: see [`super::tidy`]).

use crate::config::limits::fmt_bytes;
use crate::model::artifacts::{self, ArtifactRecord};
use crate::model::events::{Event, EventSink};
use crate::model::layout::artifact_rel;
use crate::model::report::StageRecord;
use crate::model::text::{MAX_MESSAGE_BYTES, one_line};
use crate::sandbox::bindings::StageResult;
use crate::stage::Ending;

use super::{OutputFolder, Tidied};

/// Checks and hashes what the stage declared; any broken promise fails the stage.
pub(super) fn publish(
    folder: &OutputFolder<'_>,
    result: StageResult,
    tidied: &Tidied,
    record: &mut StageRecord,
    events: &EventSink,
) -> Ending {
    let (name, out_dir, limits) = (folder.stage, folder.path(), folder.limits);
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
    // Names and sizes first: nothing is hashed before the whole set is known to fit.
    let mut total: u64 = 0;
    for (index, output) in result.outputs.iter().enumerate() {
        if result.outputs[..index]
            .iter()
            .any(|o| o.name == output.name)
        {
            let err = artifacts::OutputError::Duplicate {
                name: folder.shown(&output.name),
            };
            return Ending::error(format!("broke the output contract: {err}"));
        }
        if !folder.masker.is_empty() && folder.masker.found_in(output.name.as_bytes()) {
            return Ending::error(format!(
                "declared an output named `{}`, which holds the value of a secret",
                folder.shown(&output.name)
            ));
        }
        if let Some(why) = tidied.removed(&output.name) {
            return Ending::error(format!(
                "output `{}` was refused and deleted: {}",
                folder.shown(&output.name),
                folder.shown(why)
            ));
        }
        if let Err(err) = artifacts::check_output(out_dir, &output.name) {
            return Ending::error(format!("broke the output contract: {err}"));
        }
        let size = std::fs::metadata(out_dir.join(&output.name)).map_or(0, |m| m.len());
        total = total.saturating_add(size);
        if total > limits.output_size {
            return Ending::error(format!(
                "wrote more than its {} output size limit",
                fmt_bytes(limits.output_size)
            ));
        }
    }
    let mut outputs = Vec::with_capacity(result.outputs.len());
    for output in result.outputs {
        let file = out_dir.join(&output.name);
        let (sha256, size) = match crate::model::digests::sha256_file_once(&file) {
            Ok(digest) => digest,
            Err(err) => return Ending::error(format!("{err:#}")),
        };
        let media_type = if output.media_type.trim().is_empty() {
            "application/octet-stream".to_string()
        } else {
            output.media_type
        };
        let artifact = ArtifactRecord {
            stage: name.to_string(),
            path: artifact_rel(name, &output.name),
            name: output.name,
            media_type,
            size,
            sha256,
        };
        events.emit(Event::ArtifactWritten {
            stage: name.to_string(),
            artifact: artifact.clone(),
        });
        outputs.push(artifact);
    }
    record.outputs = outputs;
    Ending::succeeded()
}
