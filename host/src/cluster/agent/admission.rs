//! Which jobs an agent runs: signed by a coordinator it trusts, not expired, not a replay, with
//! a run id fit to name a folder, and not decided already; what it refuses is said and kept in
//! `refused-jobs.log`.

use anyhow::{Context, Result, bail};

use super::Agent;
use crate::cluster::TakenJob;
use crate::cluster::sealed::open;
use crate::cluster::wire::{
    KIND_DECIDED, KIND_JOB, KIND_RESULT, StageDecided, StageJob, StageResult,
};
use crate::model::text::one_line;

impl Agent<'_> {
    /// The job in `taken` and the digest of its sealed bytes, when it may run here: signed by a
    /// trusted coordinator, with a run id fit to name a folder, not expired, and not a replay (a
    /// job id this agent took before under another queue message).
    pub(super) fn admit(&self, taken: &TakenJob) -> Result<(StageJob, String)> {
        let trusted = self.remote.trust().coordinator_keys();
        let opened = open::<StageJob>(&taken.payload, KIND_JOB, &trusted)
            .map_err(|why| anyhow::anyhow!("{why}"))?;
        let job = opened.value;
        check_run_id(&job.run_id)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if job.expires_at < now {
            bail!(
                "it expired {} s ago (run {}, stage `{}`)",
                now - job.expires_at,
                job.run_id,
                one_line(&job.stage.name, 200)
            );
        }
        if job.job_id.len() != 32 || !job.job_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("its job id is not 32 hex digits");
        }
        let seen = self.options.work_dir.join("seen-jobs").join(&job.job_id);
        match std::fs::read_to_string(&seen) {
            Ok(sequence) if sequence.trim() != taken.sequence.to_string() => bail!(
                "it is a replay: job {} was taken before as queue message {}, this is message {}",
                job.job_id,
                sequence.trim(),
                taken.sequence
            ),
            Ok(_) => {}
            Err(_) => {
                if let Some(parent) = seen.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&seen, taken.sequence.to_string())
                    .with_context(|| format!("cannot write {}", seen.display()))?;
            }
        }
        Ok((job, opened.sha256))
    }

    /// Says why a job was refused, and keeps it in `refused-jobs.log` in the work folder.
    pub(super) fn refuse(&self, taken: &TakenJob, why: &anyhow::Error) {
        let line = format!(
            "{} refused queue message {} (delivery {}): {}",
            crate::model::report::rfc3339(std::time::SystemTime::now()),
            taken.sequence,
            taken.delivered,
            one_line(&format!("{why:#}"), 1000)
        );
        (self.say)(format!("warning: {line}"));
        let log = self.options.work_dir.join("refused-jobs.log");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
            });
        if let Err(err) = written {
            (self.say)(format!("warning: cannot write {}: {err}", log.display()));
        }
    }

    /// Whether a coordinator this agent trusts decided the stage already: it took a result, or
    /// recorded the stage stopped.
    pub(super) async fn decided(&self, job: &StageJob, job_sha256: &str) -> bool {
        let Ok(messages) = self
            .remote
            .results()
            .since(&job.run_id, &job.stage.name, 0)
            .await
        else {
            return false;
        };
        let trusted = self.remote.trust().coordinator_keys();
        messages.iter().any(|m| {
            open::<StageDecided>(&m.bytes, KIND_DECIDED, &trusted)
                .is_ok_and(|d| d.value.run_id == job.run_id && d.value.stage == job.stage.name)
                || open::<StageResult>(&m.bytes, KIND_RESULT, &trusted)
                    .is_ok_and(|r| r.value.job_sha256 == job_sha256)
        })
    }
}

/// A run id names a folder on the agent: letters, digits, `-`, `_` and `.`, not starting with a
/// dot, at most 128 bytes.
fn check_run_id(run_id: &str) -> Result<()> {
    let fine = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !fine {
        bail!(
            "its run id {:?} cannot name a folder (letters, digits, `-`, `_`, `.`)",
            one_line(run_id, 200)
        );
    }
    Ok(())
}
