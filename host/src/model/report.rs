//! The record of a run: what `--report FILE` and `<run-dir>/report.json` contain. Plain serde
//! types so that tests, dashboards and later sessions read exactly what was written.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::exit_codes;
use crate::model::artifacts::ArtifactRecord;

/// Bumped when a field changes meaning or disappears.
pub const REPORT_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    /// Not reached yet (only seen in live views).
    Pending,
    Succeeded,
    /// The plugin returned `err(failure)`.
    Failed,
    /// The plugin trapped or panicked.
    Crashed,
    /// The host could not run it, or stopped it (bad plugin, broken contract, timeout).
    Error,
    /// Not run because an earlier stage did not succeed (or, for `when = "on-failure"`
    /// stages, because nothing failed).
    Skipped,
    /// A manual gate nobody approved yet; `sluice resume` continues from here.
    AwaitingApproval,
    /// Started and not finished: seen live, and in the journal of a run that was killed.
    Running,
    /// Stopped because a stage beside it did not succeed (`fail_fast`).
    Cancelled,
}

impl StageStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Crashed => "crashed",
            Self::Error => "error",
            Self::Skipped => "skipped",
            Self::AwaitingApproval => "awaiting approval",
            Self::Running => "running",
            Self::Cancelled => "cancelled",
        }
    }

    /// Failed, crashed or errored: what stops dependants and, unless allowed, the run.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Crashed | Self::Error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Crashed,
    Error,
    /// Stopped at a manual gate; resumable.
    AwaitingApproval,
    /// Still running — or, if no sluice holds the run's lock, killed mid-run (resumable).
    Running,
}

impl RunStatus {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Succeeded => exit_codes::SUCCESS,
            Self::Failed => exit_codes::STAGE_FAILED,
            Self::Crashed => exit_codes::STAGE_CRASHED,
            Self::Error => exit_codes::STAGE_ERROR,
            Self::AwaitingApproval => exit_codes::AWAITING_APPROVAL,
            Self::Running => exit_codes::INTERNAL_ERROR,
        }
    }

    /// The run's status is that of the stage that stopped it.
    pub fn from_stopping_stage(status: StageStatus) -> Self {
        match status {
            StageStatus::Failed => Self::Failed,
            StageStatus::Crashed => Self::Crashed,
            _ => Self::Error,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Crashed => "crashed",
            Self::Error => "error",
            Self::AwaitingApproval => "is awaiting approval",
            Self::Running => "is running",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// As written in the pipeline file.
    pub reference: String,
    /// The component file's digest, when it could be read.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// What the plugin's `describe` said.
    pub name: Option<String>,
    pub version: Option<String>,
    /// The phase the plugin says it is: shown, never trusted (the stage's `phase` is the
    /// pipeline file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Whether compiled code came from the on-disk cache (no Cranelift work).
    pub cache_hit: Option<bool>,
    /// Time to compile or load compiled code, in milliseconds.
    pub load_ms: Option<f64>,
    /// For a registry plugin: the OCI manifest digest it was pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// For a registry plugin: the trusted keys whose signatures were verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    /// The phase its pipeline entry gives it (`phase = ...`), if any.
    pub phase: Option<String>,
    pub status: StageStatus,
    pub plugin: PluginRecord,
    pub started_at: Option<String>,
    pub duration_ms: Option<f64>,
    pub outputs: Vec<ArtifactRecord>,
    /// The inputs it was given, as `stage/name`.
    pub inputs: Vec<String>,
    pub summary: Option<String>,
    /// Why it did not succeed (failed, crashed, error) or why it was skipped.
    pub message: Option<String>,
    /// Its log file, relative to the run directory.
    pub log: Option<String>,
    /// What its pipeline entry granted it, one line each (`sluice check`'s wording).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// It waits for a person's approval before it runs (`manual_approval`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate: bool,
    /// What sluice refused the stage (network, programs, secrets it was not granted).
    #[serde(default)]
    pub denied: Vec<String>,
    /// With `--learn`: the grants it was refused and the `[stage.allow]` table that allows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<crate::model::learned::LearnedGrants>,
    /// The stages it waited for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// A matrix instance's values by key (`target = "x86_64"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub matrix: std::collections::BTreeMap<String, String>,
    /// The stage cache: the key, and whether the outputs came from it (`hit`) or were stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheRecord>,
    /// Attempts before the last one, when it was retried (`retries`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<Attempt>,
    /// It did not succeed, and its entry allows that (`allow_failure`): the run went on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_allowed: bool,
    /// Where it ran when not on this machine: the agent's name and the key that signed its
    /// result (`ci-7 (ed25519:0123456789abcdef)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_on: Option<String>,
    /// Tests that failed in an earlier attempt and passed in the last one, on identical inputs
    /// (`retries`): proven flaky.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<FlakyTest>,
    /// The failed tests its `quarantine` let fail: the stage counts as succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
}

/// A test that failed and then passed on identical inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlakyTest {
    /// Its JUnit `classname` (the test binary, for cargo-test).
    #[serde(default)]
    pub class: String,
    pub name: String,
    /// The attempt it failed in (1 is the first).
    pub failed_attempt: u32,
    /// Why it failed then (its failure's message or first line).
    #[serde(default)]
    pub message: String,
}

impl FlakyTest {
    /// `class::name`, or the name alone.
    pub fn qualified(&self) -> String {
        qualified(&self.class, &self.name)
    }
}

/// A test's name as people read it: `class::name`, or the name alone.
pub fn qualified(class: &str, name: &str) -> String {
    if class.is_empty() {
        name.to_string()
    } else {
        format!("{class}::{name}")
    }
}

/// How a stage met the stage cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub key: String,
    /// Served from the cache: the plugin did not run.
    pub hit: bool,
    /// On a miss of a stage stored before: which parts of its key moved since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
    /// A hit from the shared cache: who wrote the entry (its signer's key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_from: Option<String>,
}

/// One attempt of a retried stage that did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub status: StageStatus,
    pub message: Option<String>,
    pub duration_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    pub pipeline: String,
    pub pipeline_file: String,
    /// Digest of the pipeline file; a resumed run must use the same one.
    pub pipeline_sha256: String,
    pub run_id: String,
    pub run_dir: String,
    pub status: RunStatus,
    pub exit_code: i32,
    pub started_at: String,
    /// When the run was continued after a gate, if it was.
    #[serde(default)]
    pub resumed_at: Vec<String>,
    /// What started the run: `github push`, `gitlab merge_request_event`, `ci` or `manual`.
    #[serde(default)]
    pub trigger: String,
    pub finished_at: String,
    pub duration_ms: f64,
    pub sluice_version: String,
    pub stages: Vec<StageRecord>,
    /// SLSA provenance written for a run that released something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ProvenanceRecord>,
}

/// A run in progress keeps its report's stage records up to date in a journal beside it
/// (`model::journal` writes it); its file name inside the run folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// A duration in milliseconds with microsecond precision, as reports record it.
pub fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// A moment as reports record it (RFC 3339, milliseconds, UTC).
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

pub fn journal_path(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join(JOURNAL_FILE)
}

/// One journal line: a stage's record as it now stands, and the run's elapsed time then.
#[derive(Serialize, Deserialize)]
pub struct JournalEntry {
    pub elapsed_ms: f64,
    pub stage: StageRecord,
}

impl RunReport {
    /// Writes the report atomically (temp file + rename), so a reader never sees half of it.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("cannot serialize the run report")?;
        crate::atomic_file::write(path, &json)
    }

    /// Reads a run's report; a run still in progress reads as its journal last left it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the run report {}", path.display()))?;
        let mut report: RunReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a sluice run report", path.display()))?;
        if let Some(run_dir) = path.parent() {
            report.apply_journal(run_dir);
        }
        Ok(report)
    }

    /// Applies the journal beside a report of a run still marked running: each complete line
    /// replaces its stage's record. A line that is not a whole entry (a write cut short by a crash
    /// or a full disk) is skipped.
    pub fn apply_journal(&mut self, run_dir: &Path) {
        if self.status != RunStatus::Running {
            return;
        }
        let Ok(file) = File::open(journal_path(run_dir)) else {
            return;
        };
        for line in BufReader::new(file).split(b'\n') {
            let Ok(line) = line else { break };
            let Ok(entry) = serde_json::from_slice::<JournalEntry>(&line) else {
                continue;
            };
            if let Some(record) = self.stages.iter_mut().find(|s| s.name == entry.stage.name) {
                *record = entry.stage;
                self.duration_ms = entry.elapsed_ms;
            }
        }
    }

    /// A file the record names (a log, an artifact) inside its run folder: `None` for a path
    /// that is absolute or climbs out (`..`), as a record brought from elsewhere could hold —
    /// pages and reports built from a record read nothing outside its run.
    pub fn file_in_run(&self, relative: &str) -> Option<std::path::PathBuf> {
        let path = Path::new(relative);
        let plain = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || relative.is_empty() {
            return None;
        }
        // A run folder may come from anywhere (a CI artifact someone downloaded): no step of the
        // way may be a symlink, so `logs -> /proc/self` cannot put a file from outside in.
        let mut at = std::path::PathBuf::from(&self.run_dir);
        for part in path.components() {
            at.push(part);
            let meta = std::fs::symlink_metadata(&at).ok()?;
            if meta.file_type().is_symlink() {
                return None;
            }
        }
        Some(at)
    }

    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// What the run folder holds about provenance (recorded in the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceRecord {
    /// The statement, relative to the run folder.
    pub statement: String,
    /// The signed envelope, when a key signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Why it is unsigned although a key was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What started a run, from the environment CI systems set: `github <event>` in GitHub Actions,
/// `gitlab <pipeline source>` in GitLab CI, `ci` under another CI (`CI` set), else `manual`.
pub fn detect_trigger() -> String {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| super::text::one_line(&v, 64))
            .filter(|v| !v.is_empty())
    };
    let with_detail = |system: &str, detail: Option<String>| match detail {
        Some(detail) => format!("{system} {detail}"),
        None => system.to_string(),
    };
    if var("GITHUB_ACTIONS").is_some() {
        with_detail("github", var("GITHUB_EVENT_NAME"))
    } else if var("GITLAB_CI").is_some() {
        with_detail("gitlab", var("CI_PIPELINE_SOURCE"))
    } else if var("CI").is_some_and(|v| v != "false" && v != "0") {
        "ci".to_string()
    } else {
        "manual".to_string()
    }
}

#[cfg(test)]
mod tests {
    /// A record names files inside its run folder only, and none through a symlink.
    #[test]
    fn a_record_reads_nothing_outside_its_run() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let run_dir = dir.path().join("r");
        std::fs::create_dir_all(run_dir.join("logs"))?;
        std::fs::write(run_dir.join("logs/a.log"), "ok")?;
        std::os::unix::fs::symlink("/proc/self", run_dir.join("proc"))?;
        std::os::unix::fs::symlink("/etc/hostname", run_dir.join("logs/b.log"))?;
        let report: crate::model::report::RunReport = serde_json::from_value(serde_json::json!({
            "schema": 1, "pipeline": "p", "pipeline_file": "p.toml", "pipeline_sha256": "x",
            "run_id": "r", "run_dir": run_dir, "status": "failed", "exit_code": 1,
            "started_at": "t", "finished_at": "t", "duration_ms": 0.0, "sluice_version": "0",
            "stages": [],
        }))?;
        assert_eq!(
            report.file_in_run("logs/a.log"),
            Some(run_dir.join("logs/a.log"))
        );
        for outside in [
            "../../etc/shadow",
            "/etc/shadow",
            "logs/../../x",
            "",
            "./a",
            "proc/self/environ",
            "logs/b.log",
        ] {
            assert_eq!(report.file_in_run(outside), None, "{outside}");
        }
        Ok(())
    }
}
