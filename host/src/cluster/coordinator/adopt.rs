//! Taking an agent's result as a stage's: the first on the stage's subjects that is signed by a
//! key trusted for the stage and bound to the job sent; of it only what the agent decides, every
//! string made display-safe, outputs and log fetched by digest.

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};

use super::{Dispatch, MAX_EVENT_LINE};
use crate::cluster::sealed::{Refused, open, seal};
use crate::cluster::wire::{KIND_DECIDED, KIND_RESULT, StageDecided, StageResult};
use crate::model::events::LogSource;
use crate::model::layout::is_artifact_rel;
use crate::model::report::{StageRecord, StageStatus};
use crate::model::text::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, one_line};

impl Dispatch<'_> {
    /// The first result, from stream sequence `next` on, signed by a key trusted to record this
    /// stage and bound to the job with digest `job_sha256`; anything else on the stage's
    /// subjects is refused and said (once: `next` moves past it).
    pub(super) async fn look(&self, job_sha256: &str, next: &mut u64) -> Result<Option<Bound>> {
        let (run, exec) = (self.run, self.exec);
        let name = &exec.stage.name;
        let trusted = run.remote.trust().agents_for(&exec.stage.runs_on);
        for message in run.remote.results().since(&run.run_id, name, *next).await? {
            *next = message.sequence + 1;
            let why = match open::<StageResult>(&message.bytes, KIND_RESULT, &trusted) {
                Ok(opened) if opened.value.job_sha256 == job_sha256 => {
                    return Ok(Some(Bound {
                        result: opened.value,
                        sha256: opened.sha256,
                        signer: opened.signer.short_id(),
                    }));
                }
                Ok(opened) => format!(
                    "it answers another job (signed by {})",
                    opened.signer.short_id()
                ),
                // The coordinator's own note that it decided: not a result.
                Err(Refused::WrongKind(kind, _)) if kind.contains(KIND_DECIDED) => continue,
                Err(err) => err.to_string(),
            };
            exec.say(
                LogSource::Warn,
                &format!("sluice: refused a result recorded for this stage: {why}"),
            );
        }
        Ok(None)
    }

    /// Takes a bound result as this stage's: its outputs and log fetched by digest into the
    /// run folder (verified on the way); of its record only what the agent decides — status,
    /// times, outputs, summary, message, what was denied, earlier attempts, the plugin's name —
    /// each string made display-safe. Phase, grants, plugin digest, gate, dependencies and
    /// inputs stay the coordinator's.
    pub(super) async fn adopt(&self, bound: Bound, record: &mut StageRecord) -> Result<()> {
        let (run, layout) = (self.run, self.exec.around.layout);
        let (remote, name) = (run.remote, &self.exec.stage.name);
        let result = bound.result;
        let theirs = match &result.record_sha256 {
            // Too big for the message: the record the agent signed by digest, from the store.
            Some(sha256) => {
                let file = remote.blobs().fetch(sha256).await?;
                let whole: StageRecord = serde_json::from_slice(&std::fs::read(&file)?)
                    .context("the stage's record from the store cannot be read")?;
                if whole.name != *name {
                    bail!(
                        "the record signed by {} is stage `{}`'s",
                        bound.signer,
                        one_line(&whole.name, 200)
                    );
                }
                whole
            }
            None => result.record,
        };
        if !matches!(
            theirs.status,
            StageStatus::Succeeded
                | StageStatus::Failed
                | StageStatus::Error
                | StageStatus::Crashed
                | StageStatus::Cancelled
        ) {
            bail!(
                "the result signed by {} says the stage is `{}`, which is not how a stage ends",
                bound.signer,
                theirs.status.label()
            );
        }
        let output = self.exec.output();
        output.empty();
        output.create()?;
        for artifact in &theirs.outputs {
            if artifact.stage != *name
                || !is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path)
                || !crate::model::text::is_display_safe(&artifact.name)
            {
                bail!(
                    "the result signed by {} names artifact `{}` at `{}`, which is not this stage's",
                    bound.signer,
                    one_line(&artifact.reference(), MAX_FIELD_BYTES),
                    one_line(&artifact.path, MAX_FIELD_BYTES)
                );
            }
        }
        // Several at once: each is a few round trips to the server.
        let wanted: Vec<(String, std::path::PathBuf, String)> = theirs
            .outputs
            .iter()
            .map(|a| (a.sha256.clone(), layout.dir.join(&a.path), a.reference()))
            .collect();
        let blobs = remote.blobs();
        futures_util::stream::iter(wanted)
            .map(|(sha256, dest, reference)| async move {
                blobs
                    .place(&sha256, &dest)
                    .await
                    .with_context(|| format!("cannot bring back artifact `{reference}`"))
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        for artifact in &theirs.outputs {
            // It came from the store, verified: the next stage's agent finds it there.
            run.mark_stored(artifact.sha256.clone());
        }
        let text = |t: Option<String>| t.map(|t| one_line(&t, MAX_MESSAGE_BYTES));
        record.status = theirs.status;
        record.started_at = theirs.started_at.map(|t| one_line(&t, 64));
        record.duration_ms = theirs.duration_ms.filter(|d| d.is_finite() && *d >= 0.0);
        record.outputs = theirs.outputs;
        record.summary = text(theirs.summary);
        record.message = text(theirs.message);
        record.denied = theirs
            .denied
            .iter()
            .take(100)
            .map(|d| one_line(d, MAX_FIELD_BYTES))
            .collect();
        record.earlier_attempts = theirs
            .earlier_attempts
            .into_iter()
            .take(11)
            .map(|mut a| {
                a.message = text(a.message);
                a
            })
            .collect();
        record.ran_on = Some(format!(
            "{} ({})",
            one_line(&result.by, MAX_FIELD_BYTES),
            bound.signer
        ));
        record.plugin.name = theirs.plugin.name.map(|n| one_line(&n, MAX_FIELD_BYTES));
        record.plugin.version = theirs.plugin.version.map(|v| one_line(&v, MAX_FIELD_BYTES));
        record.log = None;
        let rel = layout.log_rel(name);
        if let Some(text) = &result.log_text {
            std::fs::write(layout.dir.join(&rel), display_safe_lines(text))
                .with_context(|| format!("cannot write the log of `{name}`"))?;
            record.log = Some(rel);
        } else if let Some(log) = &result.log_sha256 {
            let path = layout.dir.join(&rel);
            remote.blobs().place(log, &path).await?;
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, display_safe_lines(&text))?;
            record.log = Some(rel);
        }
        // Agents still holding the job stop: the stage is decided.
        let decided = StageDecided {
            run_id: run.run_id.clone(),
            stage: name.clone(),
            result_sha256: bound.sha256,
        };
        if let Ok(sealed) = seal(&remote.trust().own, KIND_DECIDED, &decided) {
            let _ = remote.results().record(&run.run_id, name, sealed).await;
        }
        Ok(())
    }
}

/// A result that opened under a trusted key and answers the job sent.
pub(super) struct Bound {
    result: StageResult,
    /// The digest of the sealed result.
    sha256: String,
    /// Who signed it, for messages.
    signer: String,
}

/// Each line of a log from an agent, display-safe.
fn display_safe_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&one_line(line, MAX_EVENT_LINE));
        out.push('\n');
    }
    out
}
