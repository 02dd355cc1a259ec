//! `sluice resume`: continues a run that stopped at a manual gate or was killed, from its
//! journal, without running its finished stages again.

use std::path::{Path, PathBuf};

use sluice::Host;
use sluice::config::pipeline;
use sluice::model::layout::RunLayout;
use sluice::model::report::{RunReport, RunStatus};
use sluice::registry::store::PluginStore;
use sluice::resolve::resolve_pipeline;
use sluice::run::origin;

use crate::args::{GlobalArgs, ResumeArgs};
use crate::error::{CliError, Outcome};
use crate::resolve::resolve_options;
use crate::run_dirs::find_run_dir;
use crate::run_options::run_options;
use crate::view::report_run;

/// `sluice resume RUN`: refuses a run that is finished or still going elsewhere.
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
    let pipeline_file = match &args.pipeline {
        Some(file) => file.clone(),
        // sluice records the pipeline's absolute path; a relative one was written by someone
        // else, and would name a file wherever this command happens to run.
        None if !Path::new(&report.pipeline_file).is_absolute() => {
            return Err(CliError::input(format!(
                "run {} records its pipeline as {:?}, not an absolute path sluice writes; refusing to guess which file that is\n  = help: give the pipeline with --pipeline FILE",
                report.run_id,
                sluice::model::text::one_line(&report.pipeline_file, 200)
            )));
        }
        // A folder from elsewhere names a file of the machine that wrote it: running this
        // machine's file on that folder's artifacts is the user's call, not the record's.
        None if !origin::started_here(
            &run_dir,
            &report.run_id,
            &report.pipeline_file,
            &report.pipeline_sha256,
        ) =>
        {
            return Err(CliError::input(format!(
                "run folder {} was not started by sluice as this user on this machine (its {} is missing or does not match), so the pipeline its record names ({}) is not taken on its word
  = help: give the pipeline with --pipeline FILE; the finished stages' artifacts are then taken from this folder as they are",
                run_dir.display(),
                origin::FILE,
                sluice::model::text::one_line(&report.pipeline_file, 200)
            )));
        }
        None => PathBuf::from(&report.pipeline_file),
    };
    let pipeline = pipeline::load(&pipeline_file)?;
    let resolve = resolve_options(store, args.flags.resolve);
    let options = run_options(store, global, &args.flags, args.approve, None).await?;
    report_run(&args.flags.view, |sink| async move {
        let (resolved, _) = resolve_pipeline(pipeline, &resolve, &sink).await?;
        sluice::run::resume(host, &resolved, &run_dir, &options, &sink).await
    })
    .await
}

/// The run folder `args.run` names: a path, or an id under `--runs-dir`, the pipeline's default
/// runs folder, or any pipeline's default runs folder.
fn find_run(args: &ResumeArgs) -> Result<PathBuf, CliError> {
    find_run_dir(
        &args.run,
        args.runs_dir.as_deref(),
        args.pipeline.as_deref(),
    )
}
