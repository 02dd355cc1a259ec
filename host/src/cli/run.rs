//! `sluice run` and `sluice resume`: the reporter the user asked for, Ctrl-C, the interactive
//! gate, and the run's own exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use sluice::Host;
use sluice::config::pipeline;
use sluice::exit_codes;
use sluice::model::events::EventSink;
use sluice::model::layout::RunLayout;
use sluice::model::report::{RunReport, RunStatus};
use sluice::registry::store::PluginStore;
use sluice::reporters::{
    self, CiLogReporter, CiSystem, JsonLinesReporter, PlainReporter, Reporter, TerminalReporter,
    Verbosity,
};
use sluice::resolve::{ResolveError, resolve_pipeline};
use sluice::run::{Approver, Interrupt, RunOptions, RunOutcome};
use sluice::stage::cache::StageCache;

use crate::args::{CacheCommand, Format, GlobalArgs, ResumeArgs, RunArgs, ViewArgs};
use crate::error::{CliError, Outcome};
use crate::sharing::resolve_options;

pub async fn run(host: &Host, store: &PluginStore, global: &GlobalArgs, args: RunArgs) -> Outcome {
    let pipeline = pipeline::load(&args.pipeline)?;
    let resolve = resolve_options(store, args.resolve);
    let options = RunOptions {
        runs_dir: args.runs_dir,
        plugin_store: Some(store.root().to_path_buf()),
        jobs: args.jobs.map(usize::from),
        stage_cache: stage_cache_root(global),
        approve: args.approve,
        approver: interactive_approver(),
        interrupt: Some(interrupt_on_ctrl_c()),
        remote: crate::agent::remote(args.nats.as_deref(), &args.connection).await?,
    };
    report_run(&args.view, |sink| async move {
        let (resolved, _) = resolve_pipeline(pipeline, &resolve, &sink).await?;
        sluice::run::run(host, &resolved, &options, &sink).await
    })
    .await
}

pub async fn resume(
    host: &Host,
    store: &PluginStore,
    global: &GlobalArgs,
    args: ResumeArgs,
) -> Outcome {
    let run_dir = find_run(&args)?;
    let report = RunReport::read(&run_dir.join("report.json"))
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    match report.status {
        RunStatus::AwaitingApproval => {}
        RunStatus::Running if RunLayout::is_locked(&run_dir) => {
            return Err(CliError::input(format!(
                "run {} is still running in another sluice; wait for it, or stop it first",
                report.run_id
            )));
        }
        // Killed mid-way: its journal is where it stopped.
        RunStatus::Running => {}
        other => {
            return Err(CliError::input(format!(
                "run {} is not waiting for approval and was not interrupted (it {}); start a new run instead",
                report.run_id,
                other.label()
            )));
        }
    }
    let pipeline_file = args
        .pipeline
        .clone()
        .unwrap_or_else(|| PathBuf::from(&report.pipeline_file));
    let pipeline = pipeline::load(&pipeline_file)?;
    let resolve = resolve_options(store, args.resolve);
    let options = RunOptions {
        runs_dir: None,
        plugin_store: Some(store.root().to_path_buf()),
        jobs: args.jobs.map(usize::from),
        stage_cache: stage_cache_root(global),
        approve: args.approve,
        approver: interactive_approver(),
        interrupt: Some(interrupt_on_ctrl_c()),
        remote: crate::agent::remote(args.nats.as_deref(), &args.connection).await?,
    };
    report_run(&args.view, |sink| async move {
        let (resolved, _) = resolve_pipeline(pipeline, &resolve, &sink).await?;
        sluice::run::resume(host, &resolved, &run_dir, &options, &sink).await
    })
    .await
}

/// Ctrl-C, SIGTERM (how CI systems and container runtimes stop a job) and SIGHUP stop the
/// running stages; the run is recorded and the process exits with the run's code. A second
/// signal quits at once.
pub(crate) fn interrupt_on_ctrl_c() -> Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = Interrupt::new();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let mut next = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|()| "Ctrl-C"),
                s = term.recv() => s.map(|()| "SIGTERM"),
                s = hup.recv() => s.map(|()| "SIGHUP"),
            }
        };
        if let Some(which) = next().await {
            eprintln!(
                "\ninterrupted ({which}): stopping the running stages and recording the run (again to quit now)"
            );
            trigger.trigger_because(&format!(
                "interrupted ({which}) and stopped; earlier artifacts are kept"
            ));
            if next().await.is_some() {
                std::process::exit(130);
            }
        }
    });
    interrupt
}

/// The run folder `args.run` names: a path, or an id under `--runs-dir`, the pipeline's default
/// runs folder, or any pipeline's default runs folder.
fn find_run(args: &ResumeArgs) -> Result<PathBuf, CliError> {
    crate::runs::find_run_dir(
        &args.run,
        args.runs_dir.as_deref(),
        args.pipeline.as_deref(),
    )
}

/// The stage cache's folder, or none when it is off.
pub(crate) fn stage_cache_root(global: &GlobalArgs) -> Option<PathBuf> {
    if global.no_stage_cache {
        return None;
    }
    global.stage_cache.clone().or_else(StageCache::default_root)
}

/// `sluice cache ls` and `sluice cache gc`.
pub fn stage_cache(global: &GlobalArgs, command: CacheCommand) -> Outcome {
    let cache = StageCache::new(global.stage_cache.clone().or_else(StageCache::default_root));
    match command {
        CacheCommand::Ls => {
            let entries = cache.list();
            let total: u64 = entries.iter().map(|(_, size)| size).sum();
            for (entry, size) in &entries {
                println!(
                    "{:.16}  {:<24} {:>10}  {}",
                    entry.key,
                    entry.stage,
                    bytesize::ByteSize::b(*size).display().iec().to_string(),
                    entry.created_at
                );
            }
            println!(
                "{} entries, {} in {}",
                entries.len(),
                bytesize::ByteSize::b(total).display().iec(),
                cache
                    .root()
                    .map_or("(no cache folder)".into(), |r| r.display().to_string())
            );
        }
        CacheCommand::Gc { max_size } => {
            let removed = cache.gc(max_size.as_u64());
            println!("removed {} entries", removed.len());
        }
    }
    Ok(exit_codes::SUCCESS)
}

/// Asks on the terminal when both stdin and stderr are one; otherwise gates wait.
fn interactive_approver() -> Option<Arc<dyn Approver>> {
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| Arc::new(TerminalApprover) as Arc<dyn Approver>)
}

struct TerminalApprover;

impl Approver for TerminalApprover {
    fn approve(&self, pipeline: &str, stage: &str) -> bool {
        eprint!("\n⏸  pipeline `{pipeline}`: run stage `{stage}`? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}

/// The reporter `view` asks for.
pub(crate) fn reporter_for(view: &ViewArgs) -> Box<dyn Reporter> {
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
async fn report_run<F, Fut>(view: &ViewArgs, work: F) -> Outcome
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
    crate::runs::write_html(&outcome.report);
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
