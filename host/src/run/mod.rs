//! One run of a pipeline: every plugin prepared up front, the stages dispatched in order (here
//! or to agents), each handed the artifacts of earlier ones, the run stopped at the first stage
//! that does not succeed, and all of it recorded. Also the commands with runs of their own:
//! [`check`] and [`single`] (`sluice stage run`).
//!
//! The rules (what runs, what is skipped, what waits) are pure functions in [`schedule`]; one
//! stage is [`crate::stage`]'s; the effects of a run live in [`dispatch`], [`slot`], [`record`]
//! and [`provenance`].

pub mod check;
mod dispatch;
mod options;
pub mod origin;
pub mod provenance;
mod record;
pub mod schedule;
pub mod single;
mod slot;
mod workers;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

pub use options::{Approver, Interrupt, RunOptions, RunOutcome};

use crate::cluster::coordinator::{RemoteRun, run_state};
use crate::model::events::{Event, EventSink};
use crate::model::layout::{RunLayout, default_runs_root};
use crate::model::report::{RunReport, RunStatus, StageRecord, StageStatus, rfc3339};
use crate::resolve::ResolvedPipeline;
use crate::sandbox::engine::Host;
use crate::stage::cache::StageCache;
use crate::stage::pending_record;
use crate::stage::reach::refuse_state_in_mounts;
use crate::stage::volumes::CacheVolumes;
use crate::stage::{StageSurroundings, output::OutputFolder};
use crate::trust::secrets::SecretValues;
use record::RunHistory;

/// The run's stage cache with the shared one behind it, and why it is off when it is.
fn open_stage_cache(options: &RunOptions) -> Result<(StageCache, Option<String>)> {
    let (cache, note) = StageCache::open(options.stage_cache.clone())?;
    Ok((cache.with_shared(options.shared_cache.clone()), note))
}

/// Runs `pipeline` to its end, to the first stage that does not succeed (then only its
/// `when = "on-failure"` stages), or to a gate nobody approved.
pub async fn run(
    host: &Host,
    resolved: &ResolvedPipeline,
    options: &RunOptions,
    events: &EventSink,
) -> Result<RunOutcome> {
    let pipeline = &resolved.pipeline;
    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| default_runs_root(&pipeline.dir, &pipeline.name));
    let volumes = CacheVolumes::default_root();
    refuse_state_in_mounts(
        pipeline,
        &state_folders(host, options, &runs_root, volumes.as_deref()),
    )?;
    // A stage cache another user could write stops the run before it has a folder.
    let stage_cache = open_stage_cache(options)?;
    let layout = RunLayout::create(&runs_root)?;
    origin::write(&layout.dir, &layout.run_id, pipeline)?;
    let records = resolved
        .stages()
        .map(|(spec, stage)| pending_record(spec, stage.pin.as_ref()))
        .collect();
    let history = RunHistory {
        started_at: rfc3339(SystemTime::now()),
        resumed_at: Vec::new(),
        pipeline_sha256: pipeline.sha256.clone(),
        trigger: crate::model::report::detect_trigger(),
    };
    let session = Session {
        layout,
        records,
        history,
        stage_cache,
    };
    drive(host, resolved, options, events, session).await
}

/// Continues a run that stopped at a gate, or that was killed mid-way (its journal says
/// `running` and no sluice holds it), from its stored artifacts: finished stages are not run
/// again, stages that were running start over. Gated stages run when approved in `options`.
pub async fn resume(
    host: &Host,
    resolved: &ResolvedPipeline,
    run_dir: &Path,
    options: &RunOptions,
    events: &EventSink,
) -> Result<RunOutcome> {
    let pipeline = &resolved.pipeline;
    let runs_root = run_dir.parent().unwrap_or(run_dir);
    let volumes = CacheVolumes::default_root();
    refuse_state_in_mounts(
        pipeline,
        &state_folders(host, options, runs_root, volumes.as_deref()),
    )?;
    let report = RunReport::read(&run_dir.join("report.json"))?;
    anyhow::ensure!(
        matches!(
            report.status,
            RunStatus::AwaitingApproval | RunStatus::Running
        ),
        "run {} is not waiting for approval and was not interrupted (it {}); start a new run instead",
        report.run_id,
        report.status.label()
    );
    // Holding the run's lock proves no other sluice is still running it.
    let stage_cache = open_stage_cache(options)?;
    let layout = RunLayout::open(run_dir, &report.run_id)?;
    let digest = pipeline.sha256.clone();
    anyhow::ensure!(
        digest == report.pipeline_sha256,
        "{} changed since run {} started; a resumed run must use the same pipeline, so start a new run",
        pipeline.file.display(),
        report.run_id
    );
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    let recorded: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    anyhow::ensure!(
        names == recorded,
        "the run's stages do not match the pipeline's"
    );
    let finished: Vec<StageRecord> = report
        .stages
        .iter()
        .filter(|r| schedule::is_finished(r.status))
        .cloned()
        .collect();
    verify_finished(resolved, &finished, run_dir).map_err(|why| {
        anyhow::anyhow!(
            "run {} cannot be resumed: {why}; start a new run",
            report.run_id
        )
    })?;
    let mut records = report.stages;
    for ((spec, stage), record) in resolved.stages().zip(records.iter_mut()) {
        if !schedule::is_finished(record.status) {
            // A stage killed mid-way starts over from an empty output folder.
            OutputFolder::clear(&layout, &spec.name);
            *record = pending_record(spec, stage.pin.as_ref());
        }
    }
    let mut resumed_at = report.resumed_at;
    resumed_at.push(rfc3339(SystemTime::now()));
    let history = RunHistory {
        started_at: report.started_at,
        resumed_at,
        pipeline_sha256: digest,
        trigger: report.trigger,
    };
    let session = Session {
        layout,
        records,
        history,
        stage_cache,
    };
    drive(host, resolved, options, events, session).await
}

/// Before a run resumes, what it finished must still be what it recorded: every path in the
/// record is one sluice gives, every artifact hashes to its digest, every plugin that ran is
/// the same file.
fn verify_finished(
    resolved: &ResolvedPipeline,
    finished: &[StageRecord],
    run_dir: &Path,
) -> Result<(), String> {
    for record in finished {
        let Some((_, stage)) = resolved.stages().find(|(spec, _)| spec.name == record.name) else {
            return Err(format!(
                "the run records a stage `{}` the pipeline does not have",
                record.name
            ));
        };
        if let Some(log) = &record.log
            && *log != format!("logs/{}.log", record.name)
        {
            return Err(format!(
                "the record of stage `{}` names the log `{log}`, which is not where sluice keeps it",
                record.name
            ));
        }
        for artifact in &record.outputs {
            if artifact.stage != record.name {
                return Err(format!(
                    "the record of stage `{}` claims artifact `{}`",
                    record.name,
                    artifact.reference()
                ));
            }
            crate::model::artifacts::verify_recorded(run_dir, artifact)?;
        }
        if let Some(recorded) = &record.plugin.sha256 {
            let now = crate::model::artifacts::sha256_file(&stage.plugin_path)
                .map(|(hex, _)| hex)
                .unwrap_or_else(|_| "(unreadable)".to_string());
            if *recorded != now {
                return Err(format!(
                    "the plugin of stage `{}` changed since the run started (recorded sha256 \
                     {recorded}, now {now})",
                    record.name
                ));
            }
        }
    }
    Ok(())
}

/// What sluice keeps that no stage may reach: the runs folder, compiled code, the plugin store.
fn state_folders<'a>(
    host: &'a Host,
    options: &'a RunOptions,
    runs_root: &'a Path,
    volumes: Option<&'a Path>,
) -> Vec<(&'static str, &'a Path)> {
    let mut folders = vec![("the runs folder", runs_root)];
    if let Some(cache) = host.cache_dir() {
        folders.push(("the compiled-code cache", cache));
    }
    if let Some(store) = &options.plugin_store {
        folders.push(("the plugin store", store.as_path()));
    }
    if let Some(cache) = &options.stage_cache {
        folders.push(("the stage cache", cache.as_path()));
    }
    if let Some(volumes) = volumes {
        folders.push(("the cache volumes", volumes));
    }
    folders
}

/// Where a run (or its resumption) starts: its folder, the records so far, and the first stage
/// to consider.
struct Session {
    layout: RunLayout,
    records: Vec<StageRecord>,
    history: RunHistory,
    /// The stage cache opened for the run, and why it is off when it could not be.
    stage_cache: (StageCache, Option<String>),
}

/// Runs every pending stage of `session`, given the records of the finished ones.
async fn drive(
    host: &Host,
    resolved: &ResolvedPipeline,
    options: &RunOptions,
    events: &EventSink,
    session: Session,
) -> Result<RunOutcome> {
    let Session {
        layout,
        records,
        history,
        stage_cache: (stage_cache, cache_off),
    } = session;
    let pipeline = &resolved.pipeline;
    let clock = Instant::now();
    events.emit(Event::RunStarted {
        run_id: layout.run_id.clone(),
        pipeline: pipeline.name.clone(),
        run_dir: layout.dir.clone(),
        stages: pipeline.stages.iter().map(|s| s.name.clone()).collect(),
        at: SystemTime::now(),
    });
    for record in records.iter().filter(|r| r.status != StageStatus::Pending) {
        events.emit(Event::StageFinished {
            stage: record.name.clone(),
            status: record.status,
            elapsed: Duration::from_secs_f64(record.duration_ms.unwrap_or(0.0) / 1000.0),
            message: Some("done in an earlier session of this run".into()),
        });
    }
    let secret_values = SecretValues::load(&pipeline.secrets);
    let masker = secret_values.masker();
    let mut slots = slot::slots(resolved, records);
    let failed = slot::prepare_all(
        host,
        resolved,
        &mut slots,
        &secret_values,
        events,
        options.remote.is_some(),
    );
    let mut remote_run = match &options.remote {
        Some(remote) => Some(
            RemoteRun::start(
                remote,
                &layout.run_id,
                &history.pipeline_sha256,
                !history.resumed_at.is_empty(),
                events,
            )
            .await?,
        ),
        None => None,
    };
    if let Some(why) = cache_off {
        events.emit(Event::Log {
            stage: String::new(),
            source: crate::model::events::LogSource::Warn,
            line: format!("sluice: the stage cache cannot be used ({why}); every stage runs"),
        });
    }
    let volumes = CacheVolumes::new(CacheVolumes::default_root());
    let around = StageSurroundings {
        host,
        layout: &layout,
        events,
        masker: &masker,
        stage_cache: &stage_cache,
        volumes: &volumes,
        interrupt: options.interrupt.clone(),
    };
    let dispatcher = dispatch::Dispatcher {
        around: &around,
        remote: remote_run.as_ref(),
        resolved,
        options,
        history: &history,
        clock,
        preflight_failed: failed.is_some(),
    };
    // The dispatcher blocks while stages run on their own threads; on a multi-threaded runtime
    // the caller's other tasks (the Ctrl-C handler) keep running meanwhile.
    let finished = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| dispatcher.run(&mut slots))
        }
        _ => dispatcher.run(&mut slots),
    };
    let records = slot::records(&slots);
    drop(slots);
    let awaiting = finished.awaiting;
    let stopped_by = schedule::first_failure(&records);
    let status = schedule::run_status(awaiting.as_deref(), &stopped_by);
    let allowed: Vec<&str> = records
        .iter()
        .filter(|r| r.failure_allowed)
        .map(|r| r.name.as_str())
        .collect();
    let allowed = (!allowed.is_empty()).then(|| allowed.join(", "));
    let elapsed = clock.elapsed();
    let (report, provenance_note) = record::finish_report(
        resolved,
        &layout,
        history,
        records,
        status,
        elapsed,
        &secret_values,
    );
    let report_path = layout.report_path();
    report.write_to(&report_path)?;
    if let Some(remote) = remote_run.as_mut() {
        remote.post(run_state(
            &layout,
            &pipeline.name,
            &report.started_at,
            report.status.label().trim_start_matches("is "),
            &report.stages,
        ));
        remote.close().await;
    }
    crate::model::journal::remove(&layout.dir);
    events.emit(Event::RunFinished {
        status,
        stopped_by: awaiting.or(stopped_by.map(|(stage, _)| stage)).or(allowed),
        elapsed,
        report: report_path.clone(),
        provenance: provenance_note,
    });
    Ok(RunOutcome {
        report,
        report_path,
    })
}
