//! Plain, timestamped lines for CI logs and other non-terminals: greppable, no escape codes.

use std::io::Write;
use std::time::SystemTime;

use super::{Reporter, Verbosity, fmt_elapsed, shows_log};
use crate::model::events::Event;
use crate::model::report::StageStatus;

pub struct PlainReporter {
    verbosity: Verbosity,
    out: Box<dyn Write + Send>,
}

impl PlainReporter {
    /// Writes to stderr, leaving stdout for machine output.
    pub fn new(verbosity: Verbosity) -> Self {
        Self::to_writer(verbosity, Box::new(std::io::stderr()))
    }

    pub fn to_writer(verbosity: Verbosity, out: Box<dyn Write + Send>) -> Self {
        Self { verbosity, out }
    }

    fn line(&mut self, text: &str) {
        let at = humantime::format_rfc3339_millis(SystemTime::now());
        let _ = writeln!(self.out, "{at} {text}");
    }
}

impl Reporter for PlainReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                stages,
                run_dir,
                ..
            } => self.line(&format!(
                "run {run_id} of pipeline `{pipeline}`: {} stages ({}), in {}",
                stages.len(),
                stages.join(" → "),
                run_dir.display()
            )),
            Event::PluginResolved { .. } => {
                if let (Some((stage, text)), false) =
                    (event.resolution_line(), self.verbosity == Verbosity::Quiet)
                {
                    self.line(&format!("[{stage}] plugin {text}"));
                }
            }
            Event::LockWritten { path, changes } => {
                self.line(&format!("wrote {}: {}", path.display(), changes.join("; ")));
            }
            Event::PluginReady {
                stage,
                plugin,
                cache_hit,
                load_time,
            } => {
                if self.verbosity == Verbosity::Verbose {
                    let how = if *cache_hit { "cached" } else { "compiled" };
                    self.line(&format!(
                        "[{stage}] plugin {plugin} ready ({how}, {})",
                        fmt_elapsed(*load_time)
                    ));
                }
            }
            Event::StageStarted { stage } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(&format!("[{stage}] started"));
                }
            }
            Event::Log {
                stage,
                source,
                line,
            } => {
                if shows_log(self.verbosity, *source) {
                    self.line(&format!("[{stage}] {:<6} | {line}", source.label()));
                }
            }
            Event::ArtifactWritten { stage, artifact } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(&format!(
                        "[{stage}] output {} ({} bytes, sha256 {})",
                        artifact.name, artifact.size, artifact.sha256
                    ));
                }
            }
            Event::StageFinished {
                stage,
                status,
                elapsed,
                message,
            } => {
                let mut text = format!("[{stage}] {}", status.label());
                if *status != StageStatus::Skipped {
                    text.push_str(&format!(" in {}", fmt_elapsed(*elapsed)));
                }
                if let Some(message) = message {
                    text.push_str(&format!(": {message}"));
                }
                self.line(&text);
            }
            Event::RunFinished {
                status,
                stopped_by,
                elapsed,
                report,
                provenance,
            } => {
                if let Some(provenance) = provenance {
                    self.line(&format!("provenance: {provenance}"));
                }
                let verdict = super::verdict(*status, stopped_by.as_deref());
                self.line(&format!(
                    "{verdict} ({}); report: {}",
                    fmt_elapsed(*elapsed),
                    report.display()
                ));
            }
        }
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}
