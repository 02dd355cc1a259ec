//! Outcomes: one place that checks how a run ended and says everything when it did not end so.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice::model::report::{RunReport, StageRecord, StageStatus};

use super::Ran;

/// A finished `sluice run` with its report.
pub struct Outcome {
    pub ran: Ran,
    pub report: RunReport,
    /// The sandbox the run folder is in, kept while the outcome is looked at.
    _sandbox: Option<Arc<tempfile::TempDir>>,
}

impl Outcome {
    /// An outcome that keeps `sandbox` (its run folder) alive.
    pub(super) fn kept(ran: Ran, report: RunReport, sandbox: Arc<tempfile::TempDir>) -> Self {
        Self {
            ran,
            report,
            _sandbox: Some(sandbox),
        }
    }
}

impl From<(Ran, RunReport)> for Outcome {
    fn from((ran, report): (Ran, RunReport)) -> Self {
        Self {
            ran,
            report,
            _sandbox: None,
        }
    }
}

impl Outcome {
    /// The process exited with `exit_code` (as the report records) and the stages, in order,
    /// ended with these statuses.
    #[track_caller]
    pub fn assert_stages(&self, exit_code: i32, expected: &[(&str, StageStatus)]) -> &Self {
        let actual: Vec<(&str, StageStatus)> = self
            .report
            .stages
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert!(
            self.ran.code == exit_code && self.report.exit_code == exit_code && actual == expected,
            "expected exit {exit_code} with {expected:?}\n{}",
            self.describe()
        );
        self
    }

    /// The stage's message contains every fragment.
    #[track_caller]
    pub fn assert_message(&self, stage: &str, fragments: &[&str]) -> &Self {
        let message = self.message(stage);
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "`{fragment}` not in the message of stage `{stage}`\n{}",
                self.describe()
            );
        }
        self
    }

    /// The stage's record.
    #[track_caller]
    pub fn stage(&self, name: &str) -> &StageRecord {
        match self.report.stage(name) {
            Some(stage) => stage,
            None => panic!("no stage `{name}`\n{}", self.describe()),
        }
    }

    /// The stage's message (empty when it has none).
    #[track_caller]
    pub fn message(&self, stage: &str) -> &str {
        self.stage(stage).message.as_deref().unwrap_or_default()
    }

    pub fn run_dir(&self) -> &Path {
        Path::new(&self.report.run_dir)
    }

    /// A file in the run folder (`artifacts/STAGE/NAME`, `logs/STAGE.log`), as text.
    pub fn file(&self, relative: &str) -> Result<String> {
        let path = self.run_dir().join(relative);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// Exit code, every stage's status and message, and stderr: what a failed assertion shows.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}\nexit {} (report: {:?}, exit {})\n",
            self.ran.command, self.ran.code, self.report.status, self.report.exit_code
        );
        for stage in &self.report.stages {
            text.push_str(&format!(
                "  {:<12} {:<12} {}\n",
                stage.name,
                stage.status.label(),
                stage.message.as_deref().unwrap_or_default()
            ));
        }
        text.push_str(&format!("stderr:\n{}", self.ran.stderr));
        text
    }
}
