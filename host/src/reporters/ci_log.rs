//! Logs for the CI system a run happens inside. `--format github` folds each stage's lines into a
//! group (`::group::`) and annotates a stage that did not succeed (`::error`); `--format gitlab`
//! folds them into collapsible sections. A stage's lines are held until it finishes, so stages
//! running side by side never interleave inside a fold.
//!
//! A plugin cannot issue the CI system's commands: its text is one line and escaped already
//! (`model::text`) and always follows a `[stage]` prefix; on GitHub every fold's lines are also
//! inside `::stop-commands::` with a token chosen per run, and what goes into an annotation is
//! escaped the way the runner unescapes it; GitLab's section markers need ESC and CR, which plugin
//! text never holds.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::plain::describe;
use super::{Reporter, Verbosity, mark};
use crate::model::events::Event;
use crate::model::report::StageStatus;

/// Which CI system's log conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiSystem {
    Github,
    Gitlab,
}

pub struct CiLogReporter {
    system: CiSystem,
    verbosity: Verbosity,
    out: Box<dyn Write + Send>,
    /// Lines of stages that have not finished yet, by stage.
    held: BTreeMap<String, Vec<String>>,
    /// GitHub: the token that switches command processing off and on again around a fold.
    token: String,
    folds: usize,
}

impl CiLogReporter {
    /// Writes to stderr, like the plain reporter.
    pub fn new(system: CiSystem, verbosity: Verbosity) -> Self {
        Self::to_writer(system, verbosity, Box::new(std::io::stderr()))
    }

    pub fn to_writer(system: CiSystem, verbosity: Verbosity, out: Box<dyn Write + Send>) -> Self {
        let mut bytes = [0u8; 16];
        // Without randomness the token is still unknown to plugins, which never see this log.
        let _ = getrandom::getrandom(&mut bytes);
        Self {
            system,
            verbosity,
            out,
            held: BTreeMap::new(),
            token: format!("sluice-{}", hex::encode(bytes)),
            folds: 0,
        }
    }

    fn print(&mut self, text: &str) {
        for line in text.lines() {
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// The stage's held lines as one fold, then its result line (and annotation).
    fn finish_stage(
        &mut self,
        stage: &str,
        status: StageStatus,
        result: &str,
        message: Option<&str>,
    ) {
        let lines = self.held.remove(stage).unwrap_or_default();
        if !lines.is_empty() {
            let header = format!("{} {result}", mark(status));
            self.fold(stage, &header, &lines);
        }
        self.print(result);
        if matches!(
            status,
            StageStatus::Failed | StageStatus::Crashed | StageStatus::Error
        ) {
            let what = format!("stage {stage} {}", status.label());
            let message = message.unwrap_or(status.label());
            let annotation = match self.system {
                CiSystem::Github => format!(
                    "::error title={}::{}",
                    escape_property(&what),
                    escape_data(message)
                ),
                CiSystem::Gitlab => format!("\x1b[31;1mERROR: {what}: {message}\x1b[0m"),
            };
            self.print(&annotation);
        }
    }

    fn fold(&mut self, stage: &str, header: &str, lines: &[String]) {
        self.folds += 1;
        match self.system {
            CiSystem::Github => {
                let token = self.token.clone();
                self.print(&format!("::group::{}", escape_data(header)));
                self.print(&format!("::stop-commands::{token}"));
                for line in lines {
                    self.print(line);
                }
                self.print(&format!("::{token}::"));
                self.print("::endgroup::");
            }
            CiSystem::Gitlab => {
                let name = format!("sluice_{}_{}", self.folds, section_name(stage));
                let now = unix_seconds();
                self.print(&format!(
                    "\x1b[0Ksection_start:{now}:{name}[collapsed=true]\r\x1b[0K{header}"
                ));
                for line in lines {
                    self.print(line);
                }
                let end = unix_seconds();
                self.print(&format!("\x1b[0Ksection_end:{end}:{name}\r\x1b[0K"));
            }
        }
    }
}

impl Reporter for CiLogReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::StageFinished {
                stage,
                status,
                message,
                ..
            } => {
                let result = describe(self.verbosity, event).unwrap_or_default();
                self.finish_stage(stage, *status, &result, message.as_deref());
            }
            // Progress stays live: a started line is not held.
            Event::StageStarted { .. } => {
                if let Some(text) = describe(self.verbosity, event) {
                    self.print(&text);
                }
            }
            Event::Log { stage, .. }
            | Event::ArtifactWritten { stage, .. }
            | Event::PluginReady { stage, .. } => {
                if let Some(text) = describe(self.verbosity, event) {
                    self.held.entry(stage.clone()).or_default().push(text);
                }
            }
            _ => {
                if let Some(text) = describe(self.verbosity, event) {
                    self.print(&text);
                }
            }
        }
    }

    /// Lines of stages that never finished (a run cut short) are still shown, folded.
    fn finish(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (stage, lines) in held {
            let header = format!("{stage}: did not finish");
            self.fold(&stage, &header, &lines);
        }
        let _ = self.out.flush();
    }
}

/// A workflow command's data, escaped as GitHub's runner unescapes it.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (`title=`): data escaping plus `:` and `,`.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// GitLab section names take letters, digits, `_`, `.` and `-`.
fn section_name(stage: &str) -> String {
    stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
