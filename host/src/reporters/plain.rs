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

    /// Each line of `text` (plugin text is one line already; only sluice's own has several),
    /// timestamped.
    fn line(&mut self, text: &str) {
        let at = humantime::format_rfc3339_millis(SystemTime::now());
        for line in text.lines() {
            let _ = writeln!(self.out, "{at} {line}");
        }
    }
}

impl Reporter for PlainReporter {
    fn event(&mut self, event: &Event) {
        if let Some(text) = describe(self.verbosity, event) {
            self.line(&text);
        }
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// The line an event is shown as (without the timestamp), if it is shown at `verbosity`. Shared
/// with the CI-log reporters, which group these lines by stage.
pub(crate) fn describe(verbosity: Verbosity, event: &Event) -> Option<String> {
    let quiet = verbosity == Verbosity::Quiet;
    match event {
        Event::RunStarted {
            run_id,
            pipeline,
            stages,
            run_dir,
            ..
        } => Some(format!(
            "run {run_id} of pipeline `{pipeline}`: {} stages ({}), in {}",
            stages.len(),
            stages.join(" → "),
            run_dir.display()
        )),
        Event::PluginResolved { .. } => event
            .resolution_line()
            .filter(|_| !quiet)
            .map(|(stage, text)| format!("[{stage}] plugin {text}")),
        Event::LockWritten { path, changes } => {
            Some(format!("wrote {}: {}", path.display(), changes.join("; ")))
        }
        Event::PluginReady {
            stage,
            plugin,
            cache_hit,
            load_time,
        } => (verbosity == Verbosity::Verbose).then(|| {
            let how = if *cache_hit { "cached" } else { "compiled" };
            format!(
                "[{stage}] plugin {plugin} ready ({how}, {})",
                fmt_elapsed(*load_time)
            )
        }),
        Event::StageStarted { stage } => (!quiet).then(|| format!("[{stage}] started")),
        Event::Log {
            stage,
            source,
            line,
        } => shows_log(verbosity, *source)
            .then(|| format!("[{stage}] {:<6} | {line}", source.label())),
        Event::ArtifactWritten { stage, artifact } => (!quiet).then(|| {
            format!(
                "[{stage}] output {} ({} bytes, sha256 {})",
                artifact.name, artifact.size, artifact.sha256
            )
        }),
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
            Some(text)
        }
        Event::RunFinished {
            status,
            stopped_by,
            elapsed,
            report,
            provenance,
        } => {
            let verdict = super::verdict(*status, stopped_by.as_deref());
            let last = format!(
                "{verdict} ({}); report: {}",
                fmt_elapsed(*elapsed),
                report.display()
            );
            Some(match provenance {
                Some(provenance) => format!("provenance: {provenance}\n{last}"),
                None => last,
            })
        }
    }
}
