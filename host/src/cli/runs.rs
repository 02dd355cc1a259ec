//! `sluice runs`: the run history — the list (status, duration, trigger), one run in detail
//! (`runs show ID`), the distributed runs of every coordinator (`runs --nats URL`), and keeping
//! the runs folders from growing forever (`runs gc --keep N | --older-than 30d`; a run still
//! going, its lock held, is never removed).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sluice::config::pipeline;
use sluice::exit_codes;
use sluice::model::layout::{RunLayout, default_runs_root, runs_home};
use sluice::model::report::{RunReport, RunStatus};
use sluice::model::text::one_line;

use crate::args::{RunsArgs, RunsCommand};
use crate::error::{CliError, Outcome, done};
use crate::nats::{NatsConnection, remote};
use crate::run_dirs::read_run;

/// `sluice runs [...]`: the subcommand asked for, or the list (here, or on a NATS run board).
pub async fn runs(args: RunsArgs) -> Outcome {
    match args.command {
        None if args.nats.is_some() => {
            on_board(args.nats.as_deref(), &args.connection, args.json).await
        }
        None => list(
            args.pipeline.as_deref(),
            args.runs_dir.as_deref(),
            args.json,
        ),
        Some(RunsCommand::Show {
            run,
            runs_dir,
            json,
        }) => show(&run, runs_dir.as_deref(), json),
        Some(RunsCommand::Gc {
            pipeline,
            runs_dir,
            keep,
            older_than,
            dry_run,
        }) => gc(
            pipeline.as_deref(),
            runs_dir.as_deref(),
            Keep {
                newest: keep,
                younger_than: older_than.map(Into::into),
            },
            dry_run,
        ),
        Some(RunsCommand::Flaky {
            pipeline,
            runs_dir,
            json,
        }) => {
            let runs = find_runs(&runs_folders(pipeline.as_deref(), runs_dir.as_deref())?);
            let reports: Vec<RunReport> = runs.into_iter().map(|run| run.report).collect();
            crate::runs_flaky::flaky(&reports, json)
        }
    }
}

/// A run found in a runs folder.
struct FoundRun {
    dir: PathBuf,
    report: RunReport,
    /// Recorded as running, but nobody holds its lock: killed mid-way.
    interrupted: bool,
    /// Its lock is held: a sluice is working on it now.
    active: bool,
}

impl FoundRun {
    fn status(&self) -> String {
        if self.interrupted {
            "interrupted".to_string()
        } else {
            self.report
                .status
                .label()
                .trim_start_matches("is ")
                .to_string()
        }
    }
}

/// The runs folders to look in: `--runs-dir`, the pipeline's default one, or every pipeline's.
fn runs_folders(
    pipeline: Option<&Path>,
    runs_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, CliError> {
    Ok(match (runs_dir, pipeline) {
        (Some(dir), _) => vec![dir.to_path_buf()],
        (None, Some(file)) => {
            let pipeline = pipeline::load(file)?;
            vec![default_runs_root(&pipeline.dir, &pipeline.name)]
        }
        (None, None) => runs_home()
            .and_then(|home| std::fs::read_dir(home).ok())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect(),
    })
}

/// Every run in `folders`, newest first. Folders without a readable report are not runs.
fn find_runs(folders: &[PathBuf]) -> Vec<FoundRun> {
    let mut runs: Vec<FoundRun> = folders
        .iter()
        .filter_map(|folder| std::fs::read_dir(folder).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let dir = entry.path();
            let report = RunReport::read(&dir.join("report.json")).ok()?;
            let active = RunLayout::is_locked(&dir);
            let interrupted = report.status == RunStatus::Running && !active;
            Some(FoundRun {
                dir,
                report,
                interrupted,
                active,
            })
        })
        .collect();
    runs.sort_by(|a, b| b.report.started_at.cmp(&a.report.started_at));
    runs
}

/// `sluice runs`: every run in the folders asked for, newest first.
fn list(pipeline: Option<&Path>, runs_dir: Option<&Path>, json: bool) -> Outcome {
    let runs = find_runs(&runs_folders(pipeline, runs_dir)?);
    if json {
        let list: Vec<serde_json::Value> = runs
            .iter()
            .map(|run| {
                serde_json::json!({
                    "run_id": run.report.run_id,
                    "pipeline": run.report.pipeline,
                    "status": run.status(),
                    "trigger": run.report.trigger,
                    "started_at": run.report.started_at,
                    "duration_ms": run.report.duration_ms,
                    "run_dir": run.report.run_dir,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&list).map_err(CliError::internal)?;
        println!("{text}");
        return Ok(exit_codes::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs found");
    }
    for run in &runs {
        let mut status = run.status();
        if run.interrupted {
            status.push_str(" (resume it with `sluice resume RUN`)");
        }
        println!(
            "{}  {:<16} {:>9}  {:<24} {}",
            run.report.run_id,
            one_line(&run.report.pipeline, 16),
            format!("{:.1}s", run.report.duration_ms / 1000.0),
            one_line(&trigger(&run.report), 48),
            status
        );
    }
    Ok(exit_codes::SUCCESS)
}

/// `sluice runs --nats URL`: every coordinator's runs, from the run board.
async fn on_board(url: Option<&str>, connection: &NatsConnection, json: bool) -> Outcome {
    let Some(remote) = remote(url, connection).await? else {
        return done();
    };
    let runs = remote
        .board()
        .list()
        .await
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    if json {
        let text = serde_json::to_string_pretty(&runs)
            .map_err(|err| CliError::internal(err.to_string()))?;
        println!("{text}");
        return done();
    }
    if runs.is_empty() {
        println!("no distributed runs on the board yet");
        return done();
    }
    println!(
        "{:<24} {:<16} {:<10} {:>6}  {:<14} FOLDER",
        "RUN", "PIPELINE", "STATUS", "STAGES", "COORDINATOR"
    );
    for run in &runs {
        let done = run
            .stages
            .iter()
            .filter(|(_, status)| !matches!(status.as_str(), "pending" | "running"))
            .count();
        println!(
            "{:<24} {:<16} {:<10} {:>6}  {:<14} {}",
            run.run_id,
            run.pipeline,
            run.status,
            format!("{done}/{}", run.stages.len()),
            run.coordinator,
            run.run_dir
        );
    }
    done()
}

fn trigger(report: &RunReport) -> String {
    if report.trigger.is_empty() {
        "-".to_string()
    } else {
        report.trigger.clone()
    }
}

/// `sluice runs show RUN`: one run — what, when, how it ended — and each stage's line.
fn show(run: &str, runs_dir: Option<&Path>, json: bool) -> Outcome {
    let (dir, report) = read_run(run, runs_dir)?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(CliError::internal)?;
        println!("{text}");
        return Ok(exit_codes::SUCCESS);
    }
    let interrupted = report.status == RunStatus::Running && !RunLayout::is_locked(&dir);
    let status = if interrupted {
        "interrupted (resume it with `sluice resume RUN`)".to_string()
    } else {
        report.status.label().to_string()
    };
    println!("run       {}", report.run_id);
    println!(
        "pipeline  {} ({})",
        one_line(&report.pipeline, 64),
        report.pipeline_file
    );
    println!("status    {status}");
    println!("trigger   {}", trigger(&report));
    println!("started   {}", report.started_at);
    for resumed in &report.resumed_at {
        println!("resumed   {resumed}");
    }
    println!(
        "took      {:.1}s (finished {})",
        report.duration_ms / 1000.0,
        report.finished_at
    );
    println!("folder    {}", dir.display());
    println!();
    for stage in &report.stages {
        let took = stage
            .duration_ms
            .map(|ms| format!("{:.1}s", ms / 1000.0))
            .unwrap_or_else(|| "-".into());
        let cached = if stage.cache.as_ref().is_some_and(|c| c.hit) {
            " (cached)"
        } else {
            ""
        };
        let mut line = format!(
            "  {:<20} {:<18} {took:>8}{cached}",
            one_line(&stage.name, 20),
            stage.status.label()
        );
        if let Some(message) = stage.message.as_ref().or(stage.summary.as_ref()) {
            line.push_str(&format!("  {}", one_line(message, 200)));
        }
        println!("{line}");
    }
    if let Some(provenance) = &report.provenance {
        println!();
        println!("provenance {}", provenance.statement);
    }
    Ok(exit_codes::SUCCESS)
}

/// What `runs gc` keeps: the newest N runs of each runs folder, and/or runs newer than a time.
#[derive(Debug, Clone, Copy)]
struct Keep {
    newest: Option<usize>,
    younger_than: Option<Duration>,
}

/// `sluice runs gc`: removes the runs `keep` does not keep; never one whose lock is held (a run
/// going on now). A `latest` link left pointing at nothing goes too.
fn gc(pipeline: Option<&Path>, runs_dir: Option<&Path>, keep: Keep, dry_run: bool) -> Outcome {
    if keep.newest.is_none() && keep.younger_than.is_none() {
        return Err(CliError::input(
            "say what to keep: --keep N (the newest N runs of each pipeline) and/or --older-than 30d (remove runs that started longer ago)",
        ));
    }
    let now = SystemTime::now();
    let (mut removed, mut freed, mut kept) = (0usize, 0u64, 0usize);
    for folder in runs_folders(pipeline, runs_dir)? {
        let runs = find_runs(std::slice::from_ref(&folder));
        for (index, run) in runs.iter().enumerate() {
            let beyond_count = keep.newest.is_some_and(|n| index >= n);
            let too_old = keep.younger_than.is_some_and(|age| {
                humantime::parse_rfc3339(&run.report.started_at)
                    .ok()
                    .and_then(|started| now.duration_since(started).ok())
                    .is_some_and(|elapsed| elapsed > age)
            });
            if !(beyond_count || too_old) || run.active {
                kept += 1;
                continue;
            }
            let size = folder_size(&run.dir);
            if dry_run {
                println!("would remove {}", run.dir.display());
            } else {
                std::fs::remove_dir_all(&run.dir).map_err(|err| {
                    CliError::internal(format!("cannot remove {}: {err}", run.dir.display()))
                })?;
                println!("removed {}", run.dir.display());
            }
            removed += 1;
            freed += size;
        }
        // A `latest` link to a removed run is removed too.
        let latest = folder.join("latest");
        if !dry_run && latest.is_symlink() && !latest.exists() {
            let _ = std::fs::remove_file(&latest);
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {removed} runs ({}), kept {kept}",
        bytesize::ByteSize(freed)
    );
    Ok(exit_codes::SUCCESS)
}

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => folder_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
