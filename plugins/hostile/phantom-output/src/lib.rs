//! Hostile fixture: declares outputs it never wrote, or with escaping names (`name` in config).
//! The host must refuse the result as a broken output contract.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage};

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_name")]
    name: String,
}

fn default_name() -> String {
    "never-written.bin".into()
}

struct Phantom;

impl Stage for Phantom {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Declares an output it did not write";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        ctx.declare_output(&config.name, "application/octet-stream");
        Ok(())
    }
}

sluice_sdk::stage!(Phantom);
