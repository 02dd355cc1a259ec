//! Reporters render the runner's event stream: a live terminal view, plain timestamped lines for
//! logs, lines folded per stage for GitHub Actions or GitLab CI, or JSON lines for machines. They run on their own thread and never block the runner. A finished
//! run's record also becomes a page (`report.html`), JUnit XML and an OpenTelemetry trace.

mod ci_log;
pub mod flaky;
mod html;
mod json_lines;
mod junit;
mod plain;
mod terminal;
pub mod test_cases;
pub mod trace;

use std::sync::mpsc;
use std::thread::JoinHandle;

pub use ci_log::{CiLogReporter, CiSystem};
pub use html::{Live, escape_html, live_report_html, page_style, report_html};
pub use json_lines::JsonLinesReporter;
pub use junit::junit_xml;
pub use plain::PlainReporter;
pub use terminal::TerminalReporter;

use crate::model::events::{Event, EventSink};

/// How much a reporter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only stage results and the final line.
    Quiet,
    /// Plus what stages print (info and above).
    Normal,
    /// Plus debug/trace log lines and plugin loading details.
    Verbose,
}

pub trait Reporter: Send {
    fn event(&mut self, event: &Event);
    /// Called once the stream ends.
    fn finish(&mut self) {}
}

/// Runs `reporter` on its own thread; the returned sink feeds it. Join the handle after the
/// run (and after dropping every sink clone) to be sure all output is written.
pub fn spawn(mut reporter: Box<dyn Reporter>) -> (EventSink, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel::<Event>();
    let handle = std::thread::spawn(move || {
        for event in receiver {
            reporter.event(&event);
        }
        reporter.finish();
    });
    (EventSink::new(sender), handle)
}

/// Whether a log line is shown at this verbosity.
pub(crate) fn shows_log(verbosity: Verbosity, source: crate::model::events::LogSource) -> bool {
    match verbosity {
        Verbosity::Quiet => false,
        Verbosity::Normal => !source.is_chatty(),
        Verbosity::Verbose => true,
    }
}

pub(crate) fn mark(status: crate::model::report::StageStatus) -> &'static str {
    use crate::model::report::StageStatus;
    match status {
        StageStatus::Succeeded => "✔",
        StageStatus::Failed => "✘",
        StageStatus::Crashed => "💥",
        StageStatus::Error => "⚠",
        StageStatus::Skipped => "⏭",
        StageStatus::Pending => "·",
        StageStatus::AwaitingApproval => "⏸",
        StageStatus::Running => "▸",
        StageStatus::Cancelled => "⊘",
    }
}

/// "pipeline succeeded" / "pipeline stopped: stage `test` failed".
pub(crate) fn verdict(status: crate::model::report::RunStatus, stopped_by: Option<&str>) -> String {
    match (status, stopped_by) {
        (crate::model::report::RunStatus::Succeeded, Some(allowed)) => {
            format!("pipeline succeeded (allowed to fail: {allowed})")
        }
        (crate::model::report::RunStatus::Succeeded, None) => "pipeline succeeded".to_string(),
        (crate::model::report::RunStatus::AwaitingApproval, Some(stage)) => {
            format!("pipeline paused: stage `{stage}` is awaiting approval")
        }
        (other, Some(stage)) => format!("pipeline stopped: stage `{stage}` {}", other.label()),
        (other, None) => format!("pipeline stopped: {}", other.label()),
    }
}

pub(crate) fn fmt_elapsed(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}
