//! Which jobs an agent runs: signed by a coordinator it trusts, not expired, not a replay, with
//! a run id fit to name a folder, and not decided already; what it refuses is said and kept in
//! `refused-jobs.log`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};

use super::Agent;
use crate::cluster::TakenJob;
use crate::cluster::sealed::open;
use crate::cluster::wire::{
    KIND_DECIDED, KIND_JOB, KIND_RESULT, StageDecided, StageJob, StageResult,
};
use crate::model::text::one_line;

/// When this process last forgot the jobs past their expiry (seconds since the epoch).
static LAST_PRUNE: AtomicU64 = AtomicU64::new(0);
/// How often it does.
const PRUNE_EVERY_SECS: u64 = 3600;

/// Forgets the job ids in `dir` whose jobs expired before `now` (a replay of one is refused as
/// expired): the folder holds the ids of the last hours' jobs, not of every job ever taken.
fn prune_seen(dir: &Path, now: u64) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let expired = std::fs::read_to_string(entry.path()).is_ok_and(|text| {
            text.split_whitespace()
                .nth(1)
                .and_then(|e| e.parse::<u64>().ok())
                .is_some_and(|expires_at| expires_at < now)
        });
        if expired {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

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
        let seen_dir = self.options.work_dir.join("seen-jobs");
        if now.saturating_sub(LAST_PRUNE.swap(now, Ordering::Relaxed)) >= PRUNE_EVERY_SECS {
            prune_seen(&seen_dir, now);
        }
        let seen = seen_dir.join(&job.job_id);
        match std::fs::read_to_string(&seen) {
            Ok(text) => {
                let sequence = text.split_whitespace().next().unwrap_or_default();
                if sequence != taken.sequence.to_string() {
                    bail!(
                        "it is a replay: job {} was taken before as queue message {}, this is message {}",
                        job.job_id,
                        one_line(sequence, 40),
                        taken.sequence
                    );
                }
            }
            Err(_) => {
                std::fs::create_dir_all(&seen_dir)?;
                // The expiry says when the id no longer needs remembering: the job is refused
                // as expired from then on.
                std::fs::write(&seen, format!("{} {}", taken.sequence, job.expires_at))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expired_job_ids_are_forgotten() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("expired"), "5 100")?;
        std::fs::write(dir.path().join("live"), "6 300")?;
        std::fs::write(dir.path().join("no-expiry"), "7")?;
        prune_seen(dir.path(), 200);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        left.sort();
        assert_eq!(left, ["live", "no-expiry"]);
        Ok(())
    }

    #[test]
    fn a_run_id_must_be_fit_to_name_a_folder() {
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_run_id("20261207T142714Z-12cddc").is_ok());
    }
}
