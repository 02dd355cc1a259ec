//! How a run is shown and recorded for the user: the reporter `--format`, `--quiet` and
//! `--verbose` ask for (`run`, `resume`, `stage run`), and what is written when a run ends — its
//! web page, `--junit`, `--report` and, when configured, its OpenTelemetry trace.

use std::io::IsTerminal;

use sluice::model::events::EventSink;
use sluice::model::report::{RunReport, StageRecord};
use sluice::reporters::{
    self, CiLogReporter, CiSystem, JsonLinesReporter, PlainReporter, Reporter, TerminalReporter,
    Verbosity,
};
use sluice::resolve::ResolveError;
use sluice::run::RunOutcome;

use crate::args::{Format, ViewArgs};
use crate::error::{CliError, Outcome};
use crate::report::write_html;

/// The reporter `view` asks for.
pub fn reporter_for(view: &ViewArgs) -> Box<dyn Reporter> {
    let verbosity = if view.quiet {
        Verbosity::Quiet
    } else if view.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    match view.format {
        Format::Json => Box::new(JsonLinesReporter),
        Format::Tty => Box::new(TerminalReporter::new(verbosity)),
        Format::Plain => Box::new(PlainReporter::new(verbosity)),
        Format::Github => Box::new(CiLogReporter::new(CiSystem::Github, verbosity)),
        Format::Gitlab => Box::new(CiLogReporter::new(CiSystem::Gitlab, verbosity)),
        Format::Auto if std::io::stderr().is_terminal() => {
            Box::new(TerminalReporter::new(verbosity))
        }
        Format::Auto => Box::new(PlainReporter::new(verbosity)),
    }
}

/// Runs `work` with the reporter `view` asks for, writes `--report`; the run's exit code.
pub async fn report_run<F, Fut>(view: &ViewArgs, work: F) -> Outcome
where
    F: FnOnce(EventSink) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<RunOutcome>>,
{
    let (sink, reporter_thread) = reporters::spawn(reporter_for(view));
    let outcome = work(sink).await;
    let _ = reporter_thread.join();
    let outcome = outcome.map_err(|err| match err.downcast::<ResolveError>() {
        Ok(refusal) => CliError::from(refusal),
        Err(err) => CliError::internal(format!("{err:#}")),
    })?;
    write_html(&outcome.report);
    print_learned(&outcome.report.stages);
    export_trace(&outcome.report).await;
    if let Some(path) = &view.junit {
        let xml = sluice::reporters::junit_xml(&outcome.report);
        sluice::atomic_file::write(path, xml.as_bytes()).map_err(|err| {
            CliError::internal(format!(
                "cannot write the JUnit report to {}: {err:#}",
                path.display()
            ))
        })?;
    }
    if let Some(path) = &view.report {
        outcome.report.write_to(path).map_err(|err| {
            CliError::internal(format!(
                "cannot write the report to {}: {err:#}",
                path.display()
            ))
        })?;
    }
    Ok(outcome.report.exit_code)
}

/// After a run with `--learn`: each stage's proposed `[stage.allow]` table, on stderr (stdout
/// may carry `--format json-lines`).
pub fn print_learned(stages: &[StageRecord]) {
    if stages.iter().all(|stage| stage.learned.is_none()) {
        return;
    }
    let mut text = String::from(
        "\nsluice: learned from this run (paste each table under its stage's [[stage]] in pipeline.toml):\n",
    );
    for stage in stages {
        match &stage.learned {
            Some(learned) => text.push_str(&learned.to_text(&stage.name)),
            None => text.push_str(&format!(
                "# stage `{}` did not run ({}): paste the tables above and run with --learn again\n",
                stage.name,
                stage.status.label()
            )),
        }
    }
    eprint!("{text}");
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the run goes to the team's tracing backend; a backend
/// that is down is a warning, never the run's outcome.
async fn export_trace(report: &RunReport) {
    use sluice::reporters::trace::{TraceTarget, export_run};
    let target = match TraceTarget::from_env() {
        Ok(Some(target)) => target,
        Ok(None) => return,
        Err(err) => {
            eprintln!("warning: the run's trace was not sent: {err:#}");
            return;
        }
    };
    match export_run(report, &target).await {
        Ok(sent) => eprintln!(
            "trace {} sent to {} ({} spans)",
            sent.trace_id, sent.endpoint, sent.spans
        ),
        Err(err) => eprintln!(
            "warning: the run's trace was not sent: {err:#}\n  = help: is the OpenTelemetry collector running? The run itself is recorded in {}",
            report.run_dir
        ),
    }
}
