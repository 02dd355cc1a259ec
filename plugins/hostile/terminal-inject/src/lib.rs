//! Hostile fixture: writes the text in its config — escape sequences, carriage returns, forged
//! sluice and CI-log lines — to stdout, stderr, the log, its summary or its failure message, and
//! claims a name and version made of it.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, info};

#[derive(Deserialize)]
struct Config {
    text: String,
    #[serde(default)]
    fail: bool,
}

struct TerminalInject;

impl Stage for TerminalInject {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Prints control sequences \u{1b}[2J everywhere";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        println!("{}", config.text);
        eprint!("{}", config.text);
        info!("{}", config.text);
        if config.fail {
            return Err(Failure::new(config.text));
        }
        ctx.set_summary(config.text);
        Ok(())
    }
}

sluice_sdk::stage!(TerminalInject);
