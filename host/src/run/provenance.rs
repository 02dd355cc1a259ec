//! SLSA v1 provenance for runs that produce a release: an in-toto Statement naming the release
//! artifacts as subjects and, as resolved dependencies, the pipeline file, every plugin that
//! ran (with its digest, and its registry pin) and the source commit; signed into a DSSE
//! envelope when the pipeline names a `provenance_key`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::config::pipeline::Pipeline;
use crate::model::report::{ProvenanceRecord, RunReport, StageStatus};
use crate::resolve::ResolvedPipeline;
use crate::trust::secrets::SecretValues;
use crate::trust::signing::{SigningKey, Statement, Subject};

pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://sluice.dev/pipeline-run/v1";
pub const STATEMENT_FILE: &str = "provenance.intoto.json";
pub const ENVELOPE_FILE: &str = "provenance.intoto.dsse.json";

/// Writes provenance into `run_dir` when a stage the pipeline file marks `phase = "release"`
/// succeeded; `None` otherwise. What plugins say they are never counts here.
pub fn write_for_run(
    resolved: &ResolvedPipeline,
    report: &RunReport,
    run_dir: &Path,
    secrets: &SecretValues,
) -> Option<Result<ProvenanceRecord>> {
    let released = report
        .stages
        .iter()
        .any(|s| s.status == StageStatus::Succeeded && s.phase.as_deref() == Some("release"));
    released.then(|| write(resolved, report, run_dir, secrets))
}

fn write(
    resolved: &ResolvedPipeline,
    report: &RunReport,
    run_dir: &Path,
    secrets: &SecretValues,
) -> Result<ProvenanceRecord> {
    // What is attested is checked first: a release artifact (or the source record) that changed
    // after it was published gets no provenance at all.
    for stage in report.stages.iter().filter(|s| {
        s.status == StageStatus::Succeeded && matches!(s.phase.as_deref(), Some("release" | "code"))
    }) {
        for artifact in &stage.outputs {
            crate::model::artifacts::verify_recorded(run_dir, artifact)
                .map_err(|why| anyhow::anyhow!("no provenance written: {why}"))?;
        }
    }
    let statement = statement(resolved, report, run_dir);
    let json = serde_json::to_vec_pretty(&statement).context("cannot encode provenance")?;
    std::fs::write(run_dir.join(STATEMENT_FILE), json)
        .with_context(|| format!("cannot write {STATEMENT_FILE}"))?;
    let mut record = ProvenanceRecord {
        statement: STATEMENT_FILE.to_string(),
        envelope: None,
        signed_by: None,
        problem: None,
    };
    let Some(secret) = &resolved.pipeline.provenance_key else {
        return Ok(record);
    };
    let signed = secrets
        .get(secret)
        .map_err(|why| anyhow::anyhow!("secret `{secret}`: {why}"))
        .and_then(SigningKey::from_pem)
        .and_then(|key| Ok((key.sign_statement(&statement)?, key.id)));
    match signed {
        Ok((envelope, key_id)) => {
            let json = serde_json::to_vec_pretty(&envelope).context("cannot encode provenance")?;
            std::fs::write(run_dir.join(ENVELOPE_FILE), json)
                .with_context(|| format!("cannot write {ENVELOPE_FILE}"))?;
            record.envelope = Some(ENVELOPE_FILE.to_string());
            record.signed_by = Some(crate::trust::signing::short_key_id(&key_id));
        }
        Err(err) => {
            record.problem = Some(format!(
                "not signed: provenance_key `{secret}` is unusable: {err:#}"
            ))
        }
    }
    Ok(record)
}

/// The in-toto statement with the SLSA v1 provenance predicate.
pub fn statement(resolved: &ResolvedPipeline, report: &RunReport, run_dir: &Path) -> Statement {
    let pipeline = &resolved.pipeline;
    let subjects: Vec<Subject> = report
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Succeeded && s.phase.as_deref() == Some("release"))
        .flat_map(|s| s.outputs.iter())
        .map(|a| Subject::sha256(a.name.clone(), &a.sha256))
        .collect();
    let mut dependencies: Vec<serde_json::Value> = Vec::new();
    for (stage, (spec, resolved_stage)) in report.stages.iter().zip(resolved.stages()) {
        let Some(sha256) = &stage.plugin.sha256 else {
            continue;
        };
        if matches!(stage.status, StageStatus::Pending | StageStatus::Skipped) {
            continue;
        }
        let uri = if spec.plugin.registry().is_some() {
            spec.plugin_ref.clone()
        } else {
            format!("file:{}", spec.plugin_ref)
        };
        let mut annotations =
            serde_json::json!({ "stage": stage.name, "status": stage.status.label() });
        if let Some(pin) = &resolved_stage.pin {
            annotations["manifestDigest"] = pin.manifest_digest.clone().into();
            annotations["signedBy"] = pin.signed_by.clone().into();
        }
        if let Some(version) = &stage.plugin.version {
            annotations["pluginVersion"] = version.clone().into();
        }
        // Who built it: an agent (its name and the key its result was signed with), or the
        // machine that ran the pipeline.
        annotations["builder"] = stage
            .ran_on
            .clone()
            .unwrap_or_else(|| "the coordinator".into())
            .into();
        dependencies.push(serde_json::json!({
            "uri": uri,
            "name": stage.plugin.name.clone().unwrap_or_else(|| stage.name.clone()),
            "digest": { "sha256": sha256 },
            "annotations": annotations,
        }));
    }
    if let Some(source) = source_commit(pipeline, report, run_dir) {
        dependencies.push(source);
    }
    let predicate = serde_json::json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "pipeline": {
                    "name": report.pipeline,
                    "path": pipeline.file.display().to_string(),
                    "digest": { "sha256": report.pipeline_sha256 },
                },
            },
            "internalParameters": {
                "sluiceVersion": report.sluice_version,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": format!("https://sluice.dev/builder/host@{}", report.sluice_version),
            },
            "metadata": {
                "invocationId": report.run_id,
                "startedOn": report.started_at,
                "finishedOn": report.finished_at,
            },
        },
    });
    Statement::new(subjects, SLSA_PROVENANCE_V1, predicate)
}

/// The commit a code-phase stage recorded in its `source.json` output, as a dependency.
fn source_commit(
    pipeline: &Pipeline,
    report: &RunReport,
    run_dir: &Path,
) -> Option<serde_json::Value> {
    #[derive(Deserialize)]
    struct Source {
        commit: Option<String>,
        branch: Option<String>,
        dirty: Option<bool>,
    }
    let artifact = report
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Succeeded && s.phase.as_deref() == Some("code"))
        .flat_map(|s| s.outputs.iter())
        .find(|a| a.name == "source.json")?;
    let text = std::fs::read_to_string(run_dir.join(&artifact.path)).ok()?;
    let source: Source = serde_json::from_str(&text).ok()?;
    let commit = source.commit?;
    Some(serde_json::json!({
        "uri": format!(
            "git+file://{}",
            std::path::absolute(&pipeline.workspace)
                .unwrap_or_else(|_| pipeline.workspace.clone())
                .display()
        ),
        "name": "source",
        "digest": { "gitCommit": commit },
        "annotations": { "branch": source.branch, "dirty": source.dirty },
    }))
}
