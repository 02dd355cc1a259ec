//! Build stage: applies one text transformation to every input and publishes the results under
//! the same names — a pure-wasm stand-in for a compiler that is still a real, checkable step.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Op {
    Upper,
    Lower,
    SortLines,
    ReverseLines,
    NumberLines,
    TrimLines,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    op: Op,
    /// Appended to each output name, e.g. ".upper".
    #[serde(default)]
    suffix: String,
}

fn apply(op: Op, text: &str) -> String {
    let lines = || text.lines().map(str::to_string).collect::<Vec<_>>();
    let joined = |mut lines: Vec<String>| {
        let mut out = lines.join("\n");
        if text.ends_with('\n') || lines.is_empty() {
            out.push('\n');
        }
        lines.clear();
        out
    };
    match op {
        Op::Upper => text.to_uppercase(),
        Op::Lower => text.to_lowercase(),
        Op::SortLines => {
            let mut l = lines();
            l.sort();
            joined(l)
        }
        Op::ReverseLines => {
            let mut l = lines();
            l.reverse();
            joined(l)
        }
        Op::NumberLines => joined(
            lines()
                .into_iter()
                .enumerate()
                .map(|(i, line)| format!("{:>4}  {line}", i + 1))
                .collect(),
        ),
        Op::TrimLines => joined(lines().into_iter().map(|l| l.trim().to_string()).collect()),
    }
}

struct TextTransform;

impl Stage for TextTransform {
    const PHASE: Phase = Phase::Build;
    const DESCRIPTION: &'static str = "Transforms every text input: upper, lower, sort-lines, reverse-lines, number-lines, trim-lines";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let inputs = ctx.inputs().to_vec();
        if inputs.is_empty() {
            fail!("no inputs to transform: give this stage `inputs` from an earlier stage");
        }
        for input in &inputs {
            let text = ctx.read_to_string(input)?;
            let out = apply(config.op, &text);
            let name = format!("{}{}", input.name, config.suffix);
            ctx.write_output(&name, &input.media_type, &out)?;
            info!(
                "{}/{} -> {name} ({} bytes)",
                input.stage,
                input.name,
                out.len()
            );
        }
        ctx.set_summary(format!("transformed {} files", inputs.len()));
        Ok(())
    }
}

sluice_sdk::stage!(TextTransform);
