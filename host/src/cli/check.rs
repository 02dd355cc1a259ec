//! `sluice check`: validates a pipeline file and every plugin it names, and prints each stage
//! with its plugin, grants, capability set beside pipeline.lock's, and problems, and the graph's
//! waves; runs nothing.

use std::path::Path;

use sluice::Host;
use sluice::config::pipeline;
use sluice::exit_codes;
use sluice::registry::store::PluginStore;

use crate::args::ResolveArgs;
use crate::error::{CliError, Outcome, done};
use crate::resolve;

/// `sluice check PIPELINE [--json]`: fails (exit 4) when some stage cannot run.
pub async fn check(
    host: &Host,
    store: &PluginStore,
    path: &Path,
    json: bool,
    resolve: ResolveArgs,
) -> Outcome {
    let pipeline = pipeline::load(path)?;
    let resolved = resolve::resolve(pipeline, store, resolve).await?;
    let report = sluice::run::check::check(host, &resolved).await;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(CliError::internal)?;
        println!("{text}");
    } else {
        println!(
            "pipeline `{}`: {} stages",
            report.pipeline,
            report.stages.len()
        );
        for stage in &report.stages {
            match &stage.problem {
                None => println!(
                    "  ✔ {:<12} {} {} ({}) — {}",
                    stage.stage,
                    stage.name.as_deref().unwrap_or("?"),
                    stage.version.as_deref().unwrap_or("?"),
                    stage
                        .pipeline_phase
                        .as_deref()
                        .or(stage.phase.as_deref())
                        .unwrap_or("?"),
                    stage.description.as_deref().unwrap_or(""),
                ),
                Some(problem) => {
                    println!(
                        "  ✘ {:<12} {}",
                        stage.stage,
                        problem.replace('\n', "\n                 ")
                    )
                }
            }
            if let (Some(marked), Some(claimed)) = (&stage.pipeline_phase, &stage.phase)
                && marked != claimed
            {
                println!(
                    "      phase   the pipeline marks it `{marked}`, its plugin says `{claimed}`: \
                     the pipeline's word counts (provenance trusts only `phase =`)"
                );
            }
            if !stage.depends_on.is_empty() {
                println!("      after   {}", stage.depends_on.join(", "));
            }
            if let Some(digest) = &stage.manifest_digest {
                let signed = if stage.signed_by.is_empty() {
                    String::new()
                } else {
                    format!(", signed by {}", stage.signed_by.join(", "))
                };
                println!("      pinned  {} → {digest}{signed}", stage.reference);
            }
            if let Some(caps) = &stage.capabilities {
                println!("      lock    {}", caps.describe());
            }
            if verbose_check(&stage.grants, &stage.imports) {
                for grant in &stage.grants {
                    println!("      grants  {grant}");
                }
                println!("      cache   {}", stage.stage_cache);
                for import in stage.imports.iter().filter(|i| {
                    !i.starts_with("wasi:cli/")
                        && !i.starts_with("wasi:io/")
                        && !i.starts_with("wasi:clocks/")
                        && !i.starts_with("wasi:random/")
                }) {
                    println!("      imports {import}");
                }
            }
        }
    }
    if !json {
        let waves: Vec<String> = report
            .waves
            .iter()
            .map(|wave| match wave.as_slice() {
                [one] => one.clone(),
                many => format!("{{{}}}", many.join(", ")),
            })
            .collect();
        println!("graph: {}", waves.join(" → "));
    }
    if report.ok() {
        done()
    } else if json {
        Err(CliError::Reported(exit_codes::STAGE_ERROR))
    } else {
        Err(CliError::stage(
            "some stages cannot run; fix the problems above",
        ))
    }
}

/// Grants and the imports that matter (files, network, programs, secrets) are worth a line
/// each; WASI basics every component imports are not.
fn verbose_check(grants: &[String], imports: &[String]) -> bool {
    !grants.is_empty() || !imports.is_empty()
}
