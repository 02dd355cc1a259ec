//! Which run folder a `RUN` argument names (`resume`, `runs show`, `report`, `stage run --from`):
//! a folder's path, or a run id looked up in the runs folders — never a way out of them.

use std::path::{Path, PathBuf};

use sluice::config::pipeline;
use sluice::model::layout::{default_runs_root, runs_home};
use sluice::model::report::RunReport;

use crate::error::CliError;

/// The folder and the record of the run `run` names (an id or a folder).
pub fn read_run(run: &str, runs_dir: Option<&Path>) -> Result<(PathBuf, RunReport), CliError> {
    let dir = find_run_dir(run, runs_dir, None)?;
    let mut report = RunReport::read(&dir.join("report.json")).map_err(|err| {
        CliError::input(format!(
            "cannot read the record of {}: {err:#}",
            dir.display()
        ))
    })?;
    // The folder given is the run's folder, whatever its record says (a record can come from
    // anywhere): pages are written, and logs read, there and nowhere else.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    report.run_dir = dir.display().to_string();
    Ok((dir, report))
}

/// The run folder `run` names: a path, or an id under `runs_dir`, the pipeline's default runs
/// folder, or any pipeline's default runs folder.
pub fn find_run_dir(
    run: &str,
    runs_dir: Option<&Path>,
    pipeline_file: Option<&Path>,
) -> Result<PathBuf, CliError> {
    let direct = PathBuf::from(run);
    if direct.join("report.json").is_file() {
        return Ok(direct);
    }
    let mut searched: Vec<PathBuf> = Vec::new();
    if let Some(runs) = runs_dir {
        searched.push(runs.to_path_buf());
    } else if let Some(file) = pipeline_file {
        let pipeline = pipeline::load(file)?;
        searched.push(default_runs_root(&pipeline.dir, &pipeline.name));
    } else if let Some(home) = runs_home() {
        searched.extend(
            std::fs::read_dir(&home)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path()),
        );
    }
    // A run id is one path segment: never a way out of the runs folder.
    let plain_id = !run.is_empty() && run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if plain_id
        && let Some(dir) = searched
            .iter()
            .map(|runs| runs.join(run))
            .find(|dir| dir.join("report.json").is_file())
    {
        return Ok(dir);
    }
    Err(CliError::input(format!(
        "no run `{}` in {}\n  = help: pass the run folder's path, or --runs-dir DIR (sluice run prints each run's folder)",
        run,
        if searched.is_empty() {
            "the default runs folders".to_string()
        } else {
            searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )))
}
