//! Test stage: a gate on content. Fails the pipeline when an input lacks a required string or
//! contains a forbidden one, naming the file and line, and publishes a report either way.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    forbid: Vec<String>,
}

struct AssertText;

impl Stage for AssertText {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Fails when inputs lack `require`d text or contain `forbid`den text";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        if config.require.is_empty() && config.forbid.is_empty() {
            return Err(Failure::new(
                "nothing to check: set `require` and/or `forbid` in [stage.config]",
            ));
        }
        let mut problems = Vec::new();
        let inputs = ctx.inputs().to_vec();
        for input in &inputs {
            let text = ctx.read_to_string(input)?;
            let file = format!("{}/{}", input.stage, input.name);
            for needle in &config.require {
                if !text.contains(needle.as_str()) {
                    problems.push(format!("{file}: required text {needle:?} not found"));
                }
            }
            for (number, line) in text.lines().enumerate() {
                for needle in &config.forbid {
                    if line.contains(needle.as_str()) {
                        problems.push(format!(
                            "{file}:{}: forbidden text {needle:?} in {:?}",
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
        let checks = inputs.len() * (config.require.len() + config.forbid.len());
        let mut report = format!("{checks} checks on {} files\n", inputs.len());
        for problem in &problems {
            warn!("{problem}");
            report.push_str(&format!("FAIL {problem}\n"));
        }
        ctx.write_output("assert-report.txt", "text/plain", &report)?;
        if problems.is_empty() {
            info!("{checks} checks passed");
            ctx.set_summary(format!("{checks} checks passed"));
            Ok(())
        } else {
            Err(Failure::new(format!(
                "{} of {checks} checks failed; first: {}",
                problems.len(),
                problems[0]
            )))
        }
    }
}

sluice_sdk::stage!(AssertText);
