//! `sluice stage run`: one plugin alone, with inputs, config and grants from the command line —
//! or one stage of an earlier run, with exactly the inputs it had (`--from RUN/STAGE`).

use std::path::{Path, PathBuf};

use sluice::Host;
use sluice::config::pipeline::{self, Pipeline};
use sluice::exit_codes;
use sluice::model::artifacts::verify_recorded;
use sluice::model::layout::runs_home;
use sluice::model::report::{RunReport, StageStatus};
use sluice::model::text::one_line;
use sluice::registry::store::PluginStore;
use sluice::reporters;
use sluice::resolve::resolve_pipeline;
use sluice::run::single::{GivenInput, run_stage};

use crate::args::StageRunArgs;
use crate::error::{CliError, Outcome};
use crate::resolve::resolve_options;
use crate::run_dirs::find_run_dir;
use crate::view::reporter_for;

pub async fn run(host: &Host, store: &PluginStore, args: StageRunArgs) -> Outcome {
    let (pipeline, index, plugin, inputs) = match &args.from {
        Some(from) => from_run(store, &args, from).await?,
        None => from_flags(&args)?,
    };
    let runs_root = args
        .runs_dir
        .clone()
        .or_else(|| runs_home().map(|h| h.join("stage-runs")))
        .unwrap_or_else(|| PathBuf::from(".sluice/stage-runs"));
    if args.learn {
        host.learn_grants();
    }
    let (sink, reporter_thread) = reporters::spawn(reporter_for(&args.view));
    let outcome = run_stage(host, &pipeline, index, &plugin, &inputs, &runs_root, &sink).await;
    drop(sink);
    let _ = reporter_thread.join();
    let (record, run_dir) = outcome.map_err(|err| CliError::internal(format!("{err:#}")))?;
    if let Some(out) = &args.out {
        for artifact in &record.outputs {
            let dest = out.join(&artifact.name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| CliError::internal(e.to_string()))?;
            }
            std::fs::copy(run_dir.join(&artifact.path), &dest).map_err(|err| {
                CliError::internal(format!("cannot write {}: {err}", dest.display()))
            })?;
        }
    }
    println!("stage {} {}", record.name, record.status.label());
    for artifact in &record.outputs {
        println!(
            "  {}  {} bytes  sha256 {}",
            artifact.name, artifact.size, artifact.sha256
        );
    }
    println!("  run folder {}", run_dir.display());
    crate::view::print_learned(std::slice::from_ref(&record));
    Ok(match record.status {
        StageStatus::Succeeded => exit_codes::SUCCESS,
        StageStatus::Failed => exit_codes::STAGE_FAILED,
        StageStatus::Crashed => exit_codes::STAGE_CRASHED,
        _ => exit_codes::STAGE_ERROR,
    })
}

type Prepared = (Pipeline, usize, PathBuf, Vec<GivenInput>);

/// A one-stage pipeline written from the flags, parsed like any pipeline file (so a bad grant
/// gets the same message).
fn from_flags(args: &StageRunArgs) -> Result<Prepared, CliError> {
    let plugin = args
        .plugin
        .clone()
        .ok_or_else(|| CliError::input("name a plugin (.wasm), or --from RUN/STAGE"))?;
    let plugin = std::path::absolute(&plugin).unwrap_or(plugin);
    let name: String = plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        format!("stage-{name}")
    };
    let workspace = args.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
    let mut text = format!(
        "version = 1\n[pipeline]\nname = \"stage-run\"\nworkspace = {}\n[[stage]]\nname = \"{name}\"\nplugin = {}\n",
        toml::Value::String(workspace.display().to_string()),
        toml::Value::String(plugin.display().to_string()),
    );
    if let Some(timeout) = &args.timeout {
        text.push_str(&format!(
            "limits = {{ timeout = {} }}\n",
            toml::Value::String(timeout.clone())
        ));
    }
    let mut allow: Vec<(String, Vec<String>)> = Vec::new();
    for item in &args.allow {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            CliError::input(format!("--allow {item}: write KEY=VALUE, e.g. exec=cargo"))
        })?;
        match allow.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value.to_string()),
            None => allow.push((key.to_string(), vec![value.to_string()])),
        }
    }
    text.push_str("[stage.allow]\n");
    for (key, values) in &allow {
        let value = if key == "workspace" {
            toml::Value::String(values.join(","))
        } else {
            toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect())
        };
        text.push_str(&format!("{key} = {value}\n"));
    }
    text.push_str("[stage.config]\n");
    for item in &args.config {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CliError::input(format!("--config {item}: write KEY=VALUE")))?;
        // A TOML value when it is one (3, true, ["a"]); otherwise the text itself.
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        text.push_str(&format!(
            "{} = {value}\n",
            toml::Value::String(key.to_string())
        ));
    }
    let pipeline = pipeline::parse(Path::new("sluice-stage-run.toml"), &text)?;
    let inputs = args
        .inputs
        .iter()
        .map(|item| {
            let (reference, file) = item.split_once('=').ok_or_else(|| {
                CliError::input(format!("--input {item}: write [STAGE/]NAME=FILE"))
            })?;
            let (stage, name) = reference.split_once('/').unwrap_or(("input", reference));
            Ok(GivenInput {
                stage: stage.to_string(),
                name: name.to_string(),
                file: PathBuf::from(file),
            })
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    Ok((pipeline, 0, plugin, inputs))
}

/// Stage `STAGE` of run `RUN` as its pipeline file has it, with the inputs it was handed —
/// each checked against the digest the run recorded.
async fn from_run(
    store: &PluginStore,
    args: &StageRunArgs,
    from: &str,
) -> Result<Prepared, CliError> {
    let (run, stage) = from.rsplit_once('/').ok_or_else(|| {
        CliError::input(format!(
            "--from {from}: write RUN/STAGE (a run id or folder, then the stage)"
        ))
    })?;
    let run_dir = find_run_dir(run, args.runs_dir.as_deref(), None)?;
    let report = RunReport::read(&run_dir.join("report.json"))
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    let record = report
        .stage(stage)
        .ok_or_else(|| CliError::input(format!("run {} has no stage `{stage}`", report.run_id)))?;
    // The grants come from a pipeline the user names, never from the folder's own say-so (a
    // downloaded run folder could name any file), and it must be the one the run was made with.
    let file = args
        .pipeline
        .clone()
        .unwrap_or_else(|| PathBuf::from("pipeline.toml"));
    let pipeline = pipeline::load(&file)?;
    if pipeline.sha256 != report.pipeline_sha256 {
        return Err(CliError::input(format!(
            "{} is not the pipeline run {} was made with (its digest is sha256:{:.12}…, the run recorded sha256:{:.12}… for {})\n  = help: run from the checkout at the commit the run was made at, or give that pipeline with --pipeline FILE",
            file.display(),
            report.run_id,
            pipeline.sha256,
            report.pipeline_sha256,
            one_line(&report.pipeline_file, 200)
        )));
    }
    let resolve = resolve_options(store, args.resolve);
    let (resolved, _) = resolve_pipeline(
        pipeline,
        &resolve,
        &sluice::model::events::EventSink::discard(),
    )
    .await
    .map_err(CliError::from)?;
    let index = resolved
        .pipeline
        .stages
        .iter()
        .position(|s| s.name == stage)
        .ok_or_else(|| CliError::input(format!("the pipeline no longer has a stage `{stage}`")))?;
    let plugin = resolved.stages[index].plugin_path.clone();
    // The plugin the pipeline names now must be the one that ran.
    let (now, _) = sluice::model::artifacts::sha256_file(&plugin)
        .map_err(|err| CliError::input(format!("cannot read {}: {err:#}", plugin.display())))?;
    if record.plugin.sha256.as_deref() != Some(now.as_str()) {
        return Err(CliError::input(format!(
            "the plugin of stage `{stage}` is not the one run {} ran ({} is sha256:{:.12}…, the run recorded {})\n  = help: rebuild or fetch the plugin at the version the run used",
            report.run_id,
            plugin.display(),
            now,
            record
                .plugin
                .sha256
                .as_deref()
                .map_or("no digest".to_string(), |d| format!(
                    "sha256:{:.12}…",
                    one_line(d, 64)
                ))
        )));
    }
    let mut inputs = Vec::new();
    for reference in &record.inputs {
        let artifact = report
            .stages
            .iter()
            .flat_map(|s| s.outputs.iter())
            .find(|a| &a.reference() == reference)
            .ok_or_else(|| CliError::input(format!("the run records no artifact `{reference}`")))?;
        let file = verify_recorded(&run_dir, artifact).map_err(CliError::input)?;
        inputs.push(GivenInput {
            stage: artifact.stage.clone(),
            name: artifact.name.clone(),
            file,
        });
    }
    Ok((resolved.pipeline, index, plugin, inputs))
}
