//! `sluice verify`: checks a signed statement (a DSSE envelope, e.g. a run's provenance) against
//! trusted public keys and says what it states.

use std::path::{Path, PathBuf};

use sluice::trust::signing::Envelope;

use crate::error::{CliError, Outcome, done};
use crate::refs::trusted_keys;

/// `sluice verify ENVELOPE --key PUB...`: who signed it, and its subjects.
pub fn verify(path: &Path, keys: &[PathBuf]) -> Outcome {
    let trusted = trusted_keys(keys)?;
    let envelope: Envelope = std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
        .map_err(|err| {
            CliError::input(format!("{} is not a DSSE envelope: {err}", path.display()))
        })?;
    let (statement, key) = envelope
        .verify(&trusted)
        .map_err(|err| CliError::refused(format!("{}: {err}", path.display())))?;
    println!(
        "{}: valid signature by {} ({})",
        path.display(),
        key.short_id(),
        key.source.display()
    );
    println!("  predicate {}", statement.predicate_type);
    for subject in &statement.subject {
        let digests: Vec<String> = subject
            .digest
            .iter()
            .map(|(alg, value)| format!("{alg}:{value}"))
            .collect();
        println!("  subject   {} {}", subject.name, digests.join(" "));
    }
    // A run's provenance says where each stage was built.
    let dependencies = statement.predicate["buildDefinition"]["resolvedDependencies"].as_array();
    for dependency in dependencies.into_iter().flatten() {
        let notes = &dependency["annotations"];
        if let (Some(stage), Some(builder)) = (notes["stage"].as_str(), notes["builder"].as_str()) {
            println!(
                "  stage     {} built by {}",
                sluice::model::text::one_line(stage, 200),
                sluice::model::text::one_line(builder, 400)
            );
        }
    }
    done()
}
